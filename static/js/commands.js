// The terminal commands the pages offer for a code (CLI, and the bootstrap one-liner that keeps
// the code out of argv via SP2P_CODE, security case D6).

export function cliReceiveCommand(origin, code) {
  return `sp2p receive -server ${origin} ${code}`;
}

export function curlReceiveCommand(origin, code) {
  const tls = origin.startsWith("https:") ? "--proto '=https' --tlsv1.2 " : "";
  return `curl ${tls}-fsSL ${origin}/r | SP2P_CODE=${code} sh`;
}
