// What the send page and the receive page share around a transfer: its state, the key -> p2p ->
// session wiring with the steps list, the relay question, cancel/abort, failure display and
// cleanup. Each page keeps only what is its own (choosing files and sharing the link; the preview
// and where the data goes).

import { CancelReason, HEARTBEAT_DEAD_AFTER_MS } from "./wire.js";
import { explainFailure } from "./failures.js";
import { establish, exchangeKeys, openSession } from "./flow.js";
import { $, ask, fillFooter, requireSecureContext, setStep, setText, show, showError, wireCopyButtons } from "./ui.js";

export class TransferPage {
  /** role "sender" | "receiver"; `peer` names the other side in messages ("receiver"). */
  constructor(role, peer) {
    this.role = role;
    this.peer = peer;
    this.busy = false;
    this.cancelled = false; // the user pressed Cancel
    this.abortReason = ""; // why the transfer was aborted from here, when not by the user
    this.sig = null;
    this.session = null;
    this.pc = null;
    this.welcome = null; // the server's welcome on `sig`
    this.onFail = () => {}; // the page's own part of showing a failure
  }

  /** Run one transfer: `body()` does the page's steps; failures end up on the page, never thrown. */
  async run(body) {
    this.busy = true;
    this.cancelled = false;
    this.abortReason = "";
    try {
      await body();
    } catch (e) {
      this.fail(e);
    } finally {
      this.cleanup();
    }
  }

  /** Keys, verify code, the data channel and the encrypted session, each shown as its step. */
  async connect(sig, { welcome, seed, sessionId }) {
    setStep("keys", "active");
    const exchange = await exchangeKeys(sig, { role: this.role, seed, sessionId });
    setText($("#verify-code"), exchange.keys.verifyCode);
    show($("#verify"), true);
    setStep("keys", "done");

    setStep("p2p", "active");
    const askRelay = () => ask($("#relay-dialog"), () => {});
    const { pc, stream, transport } = await establish(sig, { role: this.role, welcome, askRelay });
    this.pc = pc;
    const session = await openSession(sig, { role: this.role, stream, exchange });
    this.session = session;
    const silent = HEARTBEAT_DEAD_AFTER_MS / 1000;
    session.onDead = () =>
      this.abort(`The connection to the ${this.peer} was lost: nothing came from them for ${silent} seconds.`);
    setStep("p2p", "done", `via ${transport}`);
    return session;
  }

  /** The end state shared by both pages; the page fills #done itself. */
  finish() {
    this.busy = false;
    show($("#cancel"), false);
    show($("#done"), true);
    $("#done").focus();
  }

  fail(e) {
    this.busy = false;
    show($("#cancel"), false);
    for (const li of document.querySelectorAll('[data-state="active"]')) setStep(li.dataset.step, "error");
    const why = explainFailure(e, { role: this.role, peer: this.peer });
    if (this.cancelled) showError("Transfer cancelled.", why.detail);
    else if (this.abortReason) showError(this.abortReason, why.detail);
    else showError(why.text, why.detail);
    this.onFail(e);
    // Tell the peer why, unless it ended the transfer itself (a peer's Cancel or Error).
    if (this.session && !this.cancelled) {
      if (!(e && e.cancelled)) this.session.cancel(CancelReason.InternalError);
      else if (e.local) this.session.cancel(CancelReason.UserAbort);
    }
  }

  cleanup() {
    const { session, pc, sig } = this;
    setTimeout(() => {
      if (session) session.close();
      if (pc) pc.close();
    }, 500);
    if (sig) sig.close();
    this.session = null;
    this.pc = null;
    this.sig = null;
    this.welcome = null;
  }

  /** Stop a running transfer: `user` when the Cancel button did it, else `reason` is shown. */
  async abort(reason, user = false) {
    if (!this.busy) return;
    this.cancelled = user;
    if (!user) this.abortReason = reason;
    const { session, sig, pc } = this;
    if (session) {
      await session.cancel(user ? CancelReason.UserAbort : CancelReason.InternalError);
      session.close();
    }
    if (sig) sig.close();
    if (pc) pc.close();
  }

  /** Cancel button, leave-page warning while busy, Cancel to the peer when the page goes away. */
  wire() {
    $("#cancel").addEventListener("click", () => this.abort("Transfer cancelled.", true));
    window.addEventListener("beforeunload", (e) => {
      if (this.busy) e.preventDefault();
    });
    window.addEventListener("pagehide", () => {
      // A sender's Cancel would queue behind the data it buffered and rarely leave a closing
      // page: its connection closes instead, so the receiver hears it go at once rather than
      // after its liveness (15 s). A receiver's queue is empty: its Cancel leaves.
      if (this.role === "sender" && this.pc) this.pc.close();
      else if (this.session) this.session.cancel(CancelReason.UserAbort);
    });
  }
}

/**
 * Start a page: footer, secure-context check, copy buttons, then `init()`. Whatever `init()`
 * throws is shown on the page instead of leaving it blank and silent.
 */
export async function startPage(init) {
  try {
    fillFooter();
    if (!requireSecureContext()) return;
    wireCopyButtons();
    await init();
  } catch (e) {
    showError(`The page could not start: ${(e && e.message) || String(e)}`, "Reload the page to try again.");
  }
}
