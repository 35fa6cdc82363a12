// QR code of the share link, drawn on a canvas from the vendored uqr encoder (Nayuki's algorithm).
import { encode } from "../vendor/uqr/uqr.js";

export function drawQr(canvas, text, { scale = 6, dark = "#111", light = "#fff" } = {}) {
  const qr = encode(text, { ecc: "M", border: 2 });
  const n = qr.size;
  canvas.width = n * scale;
  canvas.height = n * scale;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = light;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = dark;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      if (qr.data[y][x]) ctx.fillRect(x * scale, y * scale, scale, scale);
    }
  }
  return qr;
}
