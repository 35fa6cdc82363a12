// The connection sequence both pages share (client.md §4.4, server-web.md §5.3-5.4):
// crypto exchange -> verify code -> WebRTC (optional consent-gated TURN retry) -> key confirmation
// -> signalling closed -> encrypted FrameSession.

import { fromBase64, toBase64 } from "./bytes.js";
import { confirmationMac, deriveSessionKeys, generateKeyPair, sharedSecret } from "./crypto.js";
import { confirmKeys, FrameSession, TransferError } from "./session.js";
import { connectPeer, ConnectError, stunServers, transportLabel, turnServers } from "./webrtc.js";
import { SignalType } from "./wire.js";

/** Send our public key, take the peer's, derive keys and both confirmation MACs. */
export async function exchangeKeys(sig, { role, seed, sessionId }) {
  const kp = await generateKeyPair();
  sig.send(SignalType.Crypto, { publicKey: toBase64(kp.publicKey) });
  // a CLI receiver may show the preview and ask first: it answers with `decline` or its key
  const msg = await sig.next([SignalType.Crypto], {
    timeoutMs: 120000,
    failOn: [SignalType.Error, SignalType.PeerLeft, SignalType.Decline],
    timeoutMessage: "The peer did not answer the key exchange",
  });
  let peerPub;
  try {
    peerPub = fromBase64(String(msg.payload.publicKey || ""));
  } catch {
    throw new TransferError("Encryption handshake failed (invalid peer key)");
  }
  let shared;
  try {
    shared = await sharedSecret(kp.privateKey, peerPub);
  } catch {
    throw new TransferError("Encryption handshake failed (invalid peer key)");
  }
  const senderPub = role === "sender" ? kp.publicKey : peerPub;
  const receiverPub = role === "sender" ? peerPub : kp.publicKey;
  const keys = await deriveSessionKeys(seed, shared, sessionId, senderPub, receiverPub);
  const macSender = await confirmationMac(keys.confirm, "sender", senderPub, receiverPub);
  const macReceiver = await confirmationMac(keys.confirm, "receiver", senderPub, receiverPub);
  return {
    keys,
    ownMac: role === "sender" ? macSender : macReceiver,
    peerMac: role === "sender" ? macReceiver : macSender,
  };
}

/**
 * Connect; on failure and when the server offers TURN, ask the user (askRelay() -> boolean)
 * and retry through the relay. The request goes out before asking so the peer can ask in parallel.
 * Resolves {pc, stream, transport}: transport is "WebRTC" or "WebRTC (relay)", as the CLI says it.
 */
export async function establish(sig, { role, welcome, askRelay, log = () => {} }) {
  const stun = stunServers(welcome.iceServers);
  let conn;
  try {
    conn = await connectPeer({ sig, role, iceServers: stun, log });
  } catch (e) {
    if (!(e instanceof ConnectError) || !welcome.turnAvailable) {
      if (e instanceof ConnectError && !welcome.turnAvailable) {
        throw new TransferError("Could not connect the two devices directly, and this server offers no relay.", {
          hint: "A firewall may block direct connections: try again from another network.",
        });
      }
      throw e;
    }
    log(`direct attempt failed: ${e.message}`);
  }
  if (conn) return { ...conn, transport: await transportLabel(conn.pc) };
  sig.send(SignalType.RelayRetry, {});
  const consent = await askRelay();
  if (!consent) {
    try {
      sig.send(SignalType.RelayDenied, {});
    } catch {
      // ignore
    }
    throw new TransferError("Could not establish a direct connection, and relaying was not allowed.", {
      hint: "Try again and allow the relay (your data stays end-to-end encrypted), or try from another network.",
    });
  }
  const creds = await sig.next([SignalType.TurnCredentials], {
    timeoutMs: 30000,
    timeoutMessage: "Server did not provide TURN credentials",
  });
  const turn = turnServers(creds.payload.iceServers);
  if (turn.length === 0) throw new TransferError("Server did not provide TURN credentials");
  await sig.next([SignalType.RelayRetry], {
    timeoutMs: 120000,
    failOn: [SignalType.RelayDenied, SignalType.PeerLeft, SignalType.Error],
    timeoutMessage: "Peer did not agree to relay retry",
  });
  await new Promise((r) => setTimeout(r, 500));
  // the peer's relay-retry counts as agreement, but its user may still say no (W-21): a
  // relay-denied, queued or arriving, ends this attempt with that reason, not "Peer disconnected"
  conn = await connectPeer({
    sig,
    role,
    iceServers: [...stun, ...turn],
    failOn: [SignalType.RelayDenied, SignalType.PeerLeft, SignalType.Error],
    log,
  });
  return { ...conn, transport: await transportLabel(conn.pc) };
}

/** Key confirmation over the fresh channel, then close signalling (v2) and start framing. */
export async function openSession(sig, { role, stream, exchange }) {
  await confirmKeys(stream, exchange.ownMac, exchange.peerMac);
  sig.close();
  return FrameSession.create(stream, role, exchange.keys);
}
