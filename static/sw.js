// sp2p download helper: turns bytes posted by the receive page into a streamed file download,
// so received files go to disk as they arrive instead of piling up in memory.
// Protocol (per download, over a MessagePort): page -> {type:"chunk", chunk}, {type:"end"},
// {type:"abort"}; worker -> {type:"ready", url}, {type:"ack", bytes}, {type:"cancelled"}.
// The worker acknowledges a chunk only when the stream wants more, which is the backpressure.
"use strict";

const PREFIX = "/__sp2p-download/";
const downloads = new Map();

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function contentDisposition(name) {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

self.addEventListener("message", (event) => {
  const msg = event.data || {};
  if (msg.type !== "sp2p-download" || !event.ports[0]) return;
  const port = event.ports[0];
  const id = crypto.randomUUID();
  const name = String(msg.name || "download");
  let unacked = 0;
  let controller;
  const ack = () => {
    if (unacked > 0) {
      port.postMessage({ type: "ack", bytes: unacked });
      unacked = 0;
    }
  };
  const stream = new ReadableStream(
    {
      start(c) {
        controller = c;
      },
      pull() {
        ack();
      },
      cancel() {
        port.postMessage({ type: "cancelled" });
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: 2 * 1024 * 1024 }),
  );
  port.onmessage = (e) => {
    const m = e.data || {};
    if (m.type === "chunk") {
      // A Uint8Array arrives as one (moved, not copied); wrapping it again would copy it.
      const bytes = m.chunk instanceof Uint8Array ? m.chunk : new Uint8Array(m.chunk);
      controller.enqueue(bytes);
      unacked += bytes.length;
      if (controller.desiredSize > 0) ack();
    } else if (m.type === "end") {
      controller.close();
      port.close();
    } else if (m.type === "abort") {
      controller.error(new Error("transfer failed"));
      port.close();
    }
  };
  const headers = {
    "Content-Type": "application/octet-stream",
    "Content-Disposition": contentDisposition(name),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
  };
  if (Number.isSafeInteger(msg.size) && msg.size > 0) headers["Content-Length"] = String(msg.size);
  const url = `${PREFIX}${id}/${encodeURIComponent(name)}`;
  downloads.set(id, { stream, headers });
  // Unclaimed downloads are dropped after a minute.
  setTimeout(() => downloads.delete(id), 60000);
  port.postMessage({ type: "ready", url });
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith(PREFIX)) return;
  const id = url.pathname.slice(PREFIX.length).split("/")[0];
  const entry = downloads.get(id);
  if (!entry) {
    event.respondWith(new Response("download expired", { status: 404 }));
    return;
  }
  downloads.delete(id);
  event.respondWith(new Response(entry.stream, { headers: entry.headers }));
});
