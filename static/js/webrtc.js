// WebRTC data channel setup over signalling (client.md §4.8, server-web.md §5.9).
// The sender offers and creates the channel "sp2p" (ordered, reliable); both trickle candidates
// and also send the full SDP after gathering (capped at 3 s); "connected" goes out once open.

import { ByteStream } from "./channel.js";
import { SignalType } from "./wire.js";

const GATHER_CAP_MS = 3000;
/** Each attempt, direct or relayed, gives up after this (server-web.md §5.9). */
export const ATTEMPT_TIMEOUT_MS = 15000;

export class ConnectError extends Error {}

/** STUN-only servers for the first attempt. No third-party default: none given means host only. */
export function stunServers(welcomeIceServers) {
  const out = [];
  for (const s of welcomeIceServers || []) {
    const urls = (Array.isArray(s.urls) ? s.urls : [s.urls]).filter(
      (u) => typeof u === "string" && u.trim() !== "" && !/^turns?:/i.test(u),
    );
    if (urls.length) out.push({ urls });
  }
  return out;
}

/** TURN servers with credentials from a turn-credentials message. */
export function turnServers(list) {
  const out = [];
  for (const s of list || []) {
    const urls = (Array.isArray(s.urls) ? s.urls : [s.urls]).filter((u) => typeof u === "string" && u.trim());
    if (urls.length) out.push({ urls, username: s.username || "", credential: s.credential || "" });
  }
  return out;
}

function waitGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_CAP_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/**
 * One connection attempt. role "sender" | "receiver". Resolves {pc, stream} once the data
 * channel is open; the ByteStream is attached synchronously when the channel object appears.
 * A signalling message of a type in `failOn` (buffered or arriving) ends the attempt.
 */
export async function connectPeer({
  sig,
  role,
  iceServers,
  timeoutMs = ATTEMPT_TIMEOUT_MS,
  relayOnly = false,
  failOn = [SignalType.PeerLeft, SignalType.Error],
  log = () => {},
}) {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? "relay" : "all" });
  // every signalling wait of this attempt is withdrawn when it ends (see Signaling.next)
  const attempt = new AbortController();
  const abort = attempt.signal;
  let stream = null;
  let settled = false;
  let resolveOpen;
  let rejectOpen;
  const opened = new Promise((res, rej) => {
    resolveOpen = res;
    rejectOpen = rej;
  });
  opened.catch(() => {}); // awaited later; do not report it as unhandled meanwhile
  const fail = (msg) => {
    if (!settled) rejectOpen(new ConnectError(msg));
  };
  const watchChannel = (dc) => {
    stream = new ByteStream(dc);
    if (dc.readyState === "open") resolveOpen();
    dc.addEventListener("open", () => resolveOpen());
    dc.addEventListener("close", () => fail("Data channel closed during setup"));
  };

  pc.addEventListener("icecandidate", (e) => {
    if (!e.candidate || !e.candidate.candidate) return;
    try {
      sig.send(SignalType.Candidate, {
        candidate: e.candidate.candidate,
        sdpMid: e.candidate.sdpMid ?? "0",
        sdpMLineIndex: e.candidate.sdpMLineIndex ?? 0,
      });
    } catch {
      // signalling gone: the attempt will fail on its own
    }
  });
  pc.addEventListener("connectionstatechange", () => {
    log(`connection state ${pc.connectionState}`);
    if (pc.connectionState === "failed") fail("P2P connection failed");
  });

  let remoteSet;
  const remoteReady = new Promise((r) => {
    remoteSet = r;
  });
  let pumping = true;
  const pumpCandidates = async () => {
    while (pumping) {
      let m;
      try {
        m = await sig.next([SignalType.Candidate], { failOn: [], abort });
      } catch {
        return;
      }
      await remoteReady;
      if (!pumping) return;
      const c = m.payload;
      if (typeof c.candidate !== "string" || c.candidate === "") continue;
      try {
        await pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex });
      } catch {
        // a candidate we cannot use (other family, mDNS...) is not an error
      }
    }
  };

  const deadline = setTimeout(() => fail("Could not establish a P2P connection (timed out)"), timeoutMs);
  const watchSignal = sig
    .next([], { failOn, abort }) // waits for no type: only a failOn message (or abort) ends it
    .catch((e) => fail(e.message));
  void watchSignal;

  try {
    if (role === "sender") {
      watchChannel(pc.createDataChannel("sp2p", { ordered: true }));
      void pumpCandidates();
      await pc.setLocalDescription(await pc.createOffer());
      await waitGathering(pc);
      sig.send(SignalType.Offer, { sdp: pc.localDescription.sdp, type: "offer" });
      const answer = await Promise.race([sig.next([SignalType.Answer], { failOn, abort }), opened.then(() => null)]);
      if (answer) await pc.setRemoteDescription({ type: "answer", sdp: String(answer.payload.sdp || "") });
      remoteSet();
    } else {
      pc.addEventListener("datachannel", (e) => watchChannel(e.channel));
      void pumpCandidates();
      const offer = await Promise.race([sig.next([SignalType.Offer], { failOn, abort }), opened.then(() => null)]);
      if (!offer) throw new ConnectError("Data channel opened without an offer");
      await pc.setRemoteDescription({ type: "offer", sdp: String(offer.payload.sdp || "") });
      remoteSet();
      await pc.setLocalDescription(await pc.createAnswer());
      await waitGathering(pc);
      sig.send(SignalType.Answer, { sdp: pc.localDescription.sdp, type: "answer" });
    }
    await opened;
    settled = true;
  } catch (e) {
    settled = true;
    attempt.abort();
    pumping = false;
    remoteSet();
    clearTimeout(deadline);
    pc.close();
    throw e instanceof ConnectError ? e : new ConnectError(e.message || String(e));
  }
  clearTimeout(deadline);
  attempt.abort();
  pumping = false;
  remoteSet();
  try {
    sig.send(SignalType.Connected, {});
  } catch {
    // the peer learns it from the channel anyway
  }
  if (pc.sctp && pc.sctp.maxMessageSize) stream.setMaxMessage(pc.sctp.maxMessageSize);
  return { pc, stream };
}

/** "WebRTC (relay)" when the selected candidate pair runs through a TURN server, else "WebRTC". */
export async function transportLabel(pc) {
  try {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId) || pair;
    });
    // Firefox has no transport stats; it flags the pair in use instead
    stats.forEach((s) => {
      if (!pair && s.type === "candidate-pair" && s.selected) pair = s;
    });
    const ends = pair ? [stats.get(pair.localCandidateId), stats.get(pair.remoteCandidateId)] : [];
    return ends.some((c) => c && c.candidateType === "relay") ? "WebRTC (relay)" : "WebRTC";
  } catch {
    return "WebRTC";
  }
}
