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

/** Advice by signalling error code; the receive page cannot reload (its code left the address bar). */
const SERVER_ADVICE = {
  unreachable: {
    sender: "Check your internet connection, then reload the page to try again.",
    receiver: "Check your internet connection, then open the link again.",
  },
  rate_limited: { sender: "Wait a minute, then try again.", receiver: "Wait a minute, then open the link again." },
  server_busy: { sender: "Wait a minute, then try again.", receiver: "Wait a minute, then open the link again." },
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
  if (e instanceof SignalError && Object.hasOwn(SERVER_ADVICE, e.code)) {
    return { text, detail: SERVER_ADVICE[e.code][role] };
  }
  if (e instanceof TarError) {
    return { text, detail: "Choose Save as .tar instead: the archive keeps every name as it was sent." };
  }
  return { text, detail: again };
}
