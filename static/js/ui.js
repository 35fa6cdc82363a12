// DOM helpers shared by both pages. Peer-supplied text only ever goes through textContent.

export const $ = (sel, root = document) => root.querySelector(sel);

export function show(el, visible = true) {
  el.hidden = !visible;
}

export function setText(el, text) {
  el.textContent = text;
}

export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]; // IEC: 1024-based, as the CLI prints them
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  if (seconds < 1) return "<1s";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Steps list: each <li data-step="name"> gets state pending|active|done|error. */
export function setStep(name, state, detail) {
  const li = document.querySelector(`[data-step="${name}"]`);
  if (!li) return;
  li.dataset.state = state;
  li.classList.remove("step-pending", "step-active", "step-done", "step-error");
  li.classList.add(`step-${state}`);
  if (state === "active") li.setAttribute("aria-current", "step");
  else li.removeAttribute("aria-current");
  const d = li.querySelector(".step-detail");
  if (d && detail !== undefined) d.textContent = detail;
}

/**
 * Progress display: a <progress>, a visible line "X / Y — speed — ETA" (updated ≤ 4×/s) and
 * a polite live region announced every 10 %, so screen readers are not flooded.
 */
export class ProgressView {
  constructor(root) {
    this.bar = root.querySelector("progress");
    this.text = root.querySelector(".progress-text");
    this.live = root.querySelector(".progress-live");
    this.start = 0;
    this.lastPaint = 0;
    this.lastAnnounced = -1;
    this.total = 0;
  }

  begin(total) {
    this.total = total;
    this.start = performance.now();
    this.bar.max = total > 0 ? total : 1;
    this.bar.value = 0;
    if (total <= 0) this.bar.removeAttribute("value");
  }

  update(done, force = false) {
    const now = performance.now();
    if (!force && now - this.lastPaint < 250) return;
    this.lastPaint = now;
    const secs = (now - this.start) / 1000;
    const speed = secs > 0 ? done / secs : 0;
    let line = this.total > 0 ? `${formatBytes(done)} / ${formatBytes(this.total)}` : formatBytes(done);
    line += ` — ${formatBytes(speed)}/s`;
    if (this.total > 0 && speed > 0 && done < this.total) line += ` — ETA ${formatDuration((this.total - done) / speed)}`;
    this.text.textContent = line;
    if (this.total > 0) {
      this.bar.value = Math.min(done, this.total);
      const pct = Math.floor((100 * Math.min(done, this.total)) / this.total);
      const decile = Math.floor(pct / 10);
      if (decile !== this.lastAnnounced) {
        this.lastAnnounced = decile;
        this.live.textContent = `${pct}% transferred`;
      }
    }
  }

  summary(done) {
    const secs = (performance.now() - this.start) / 1000;
    return `${formatBytes(done)} in ${formatDuration(secs)} (${formatBytes(secs > 0 ? done / secs : done)}/s)`;
  }
}

/** Wire every [data-copy-target] button to copy the text of its target element. */
export function wireCopyButtons(root = document) {
  for (const btn of root.querySelectorAll("[data-copy-target]")) {
    btn.addEventListener("click", async () => {
      const target = document.getElementById(btn.dataset.copyTarget);
      const text = target.dataset.copyText || target.textContent;
      let ok = false;
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch {
        // Clipboard API unavailable (insecure context, permissions): select for manual copy.
        const range = document.createRange();
        range.selectNodeContents(target);
        const sel = getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      }
      // the label from before any click: a second click within 2 s must not keep "Copied!"
      if (!btn.dataset.label) btn.dataset.label = btn.textContent;
      btn.textContent = ok ? "Copied!" : "Press Ctrl+C";
      btn.classList.add("copied");
      clearTimeout(btn.copiedTimer);
      btn.copiedTimer = setTimeout(() => {
        btn.textContent = btn.dataset.label;
        btn.classList.remove("copied");
      }, 2000);
    });
  }
}

/** Show an error in the page's alert region (role=alert announces it). */
export function showError(message, detail = "") {
  const box = $("#error");
  setText($("#error-text"), message);
  setText($("#error-detail"), detail);
  show(box, true);
  box.focus();
}

export function fillFooter() {
  const el = document.querySelector(".footer-version");
  if (!el) return;
  const version = el.dataset.version || "";
  if (!version || version.startsWith("<!--")) {
    el.remove();
    return;
  }
  el.textContent = `sp2p ${version}`;
  const built = el.dataset.buildTime;
  if (built && !built.startsWith("<!--")) el.title = `Built ${built}`;
}

/** An in-page yes/no question (no blocking confirm()). Resolves true/false. */
export function ask(dialog, fill) {
  fill(dialog);
  show(dialog, true);
  const yes = dialog.querySelector("[data-answer=yes]");
  const no = dialog.querySelector("[data-answer=no]");
  yes.focus();
  return new Promise((resolve) => {
    const done = (v) => {
      show(dialog, false);
      yes.onclick = null;
      no.onclick = null;
      resolve(v);
    };
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
  });
}

/** WebCrypto and service workers need a secure context (https, or http on localhost). */
export function requireSecureContext() {
  if (window.isSecureContext && globalThis.crypto && globalThis.crypto.subtle) return true;
  showError(
    "This page needs a secure connection (https) to encrypt your files.",
    "Open it over https, or use the sp2p command-line tool.",
  );
  return false;
}
