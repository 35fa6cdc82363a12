// What a page says when a transfer fails: what happened (the error's sentence) and what to do
// next, chosen from the error's type and code, never from its text.

import { ChannelClosed } from "./channel.js";
import { SignalError } from "./signal.js";
import { TarError } from "./tar.js";

/** What to do after a failure with no better advice: each page's way to try again. */
const AGAIN = {
  sender: "Press Start over to send again; the receiver will need the new link.",
  receiver: "Ask the sender to send it again: each link works only once.",
};

const SERVER_ADVICE = {
  unreachable: "Check your internet connection, then reload the page to try again.",
  rate_limited: "Wait a minute, then try again.",
  server_busy: "Wait a minute, then try again.",
};

/**
 * {text, detail} for a failed transfer. `role` is "sender" | "receiver"; `peer` names the other
 * side. An error may carry its own advice (`hint`).
 */
export function explainFailure(e, { role, peer }) {
  const again = AGAIN[role];
  if (e instanceof ChannelClosed) {
    return {
      text: `The connection to the ${peer} was lost: they may have closed the page or gone offline.`,
      detail: again,
    };
  }
  const text = (e && e.message) || String(e);
  if (e && e.hint) return { text, detail: e.hint };
  if (e instanceof SignalError && SERVER_ADVICE[e.code]) return { text, detail: SERVER_ADVICE[e.code] };
  if (e instanceof TarError) {
    return { text, detail: "Choose Save as .tar instead: the archive keeps every name as it was sent." };
  }
  return { text, detail: again };
}
