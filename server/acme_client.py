"""ACME (Let's Encrypt or any RFC 8555 server) with HTTP-01, using certbot's `acme` library.

Layout under `<config-dir>/acme/`:
    account.pem               the account key (EC P-256), created once, mode 0600
    <host>/fullchain.pem      leaf + intermediates, what the TLS listener serves
    <host>/privkey.pem        the certificate key, mode 0600

`start(config)` runs in the gunicorn master before any request is served: it opens the
HTTP-01 listener (`-acme-http-addr`, default :80), obtains a certificate if there is none
or it is due for renewal, then starts a daemon thread that checks every
`-acme-check-interval` and renews `-acme-renew-before` expiry. The worker's TLS context
notices the new files by their modification time (server.tls.CertReloader).

The HTTP-01 listener answers challenge tokens and redirects every other GET/HEAD to the
https base URL (other methods: 400 "Use HTTPS"), like upstream's autocert handler.
"""

from __future__ import annotations

import datetime
import http.server
import logging
import threading
from pathlib import Path
from urllib.parse import urlsplit

from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from server.config import ConfigError, ServerConfig, parse_addr
from server.stats import write_atomic

log = logging.getLogger("sp2p.server")

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


def acme_dir(config: ServerConfig) -> Path:
    assert config.config_dir is not None
    return config.config_dir / "acme"


def cert_paths(config: ServerConfig) -> tuple[Path, Path]:
    host_dir = acme_dir(config) / config.acme_host
    return host_dir / "fullchain.pem", host_dir / "privkey.pem"


class ChallengeServer:
    """The HTTP-01 responder (thread-per-request, loopback or public)."""

    def __init__(self, addr: str, https_base: str) -> None:
        self.tokens: dict[str, str] = {}
        host, port = parse_addr(addr, flag="-acme-http-addr")  # validated at start; named right if not
        tokens, base = self.tokens, https_base.rstrip("/")

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "sp2p-acme"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body = tokens.get(self.path)
                if body is not None:
                    self._reply(200, body.encode(), "application/octet-stream")
                elif self.path.startswith(CHALLENGE_PREFIX):
                    self._reply(404, b"404 page not found\n", "text/plain; charset=utf-8")
                else:
                    self.send_response(302)
                    self.send_header("Location", base + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            do_HEAD = do_GET  # noqa: N815

            def do_POST(self) -> None:  # noqa: N802
                self._reply(400, b"Use HTTPS\n", "text/plain; charset=utf-8")

            do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("acme http: " + format, *args)

        try:
            self.httpd = http.server.ThreadingHTTPServer((host or "", port), Handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {addr} for ACME HTTP-01: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="sp2p-acme-http", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _load_or_create_account_key(path: Path) -> JWKEC:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_atomic(path, pem.decode(), mode=0o600)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: not an EC account key")
    return JWKEC(key=key)


def needs_renewal(fullchain: Path, renew_before: float) -> bool:
    try:
        leaf = x509.load_pem_x509_certificates(fullchain.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return True
    remaining = leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return remaining.total_seconds() < renew_before


def obtain(config: ServerConfig, responder: ChallengeServer) -> None:
    """One full ACME order for the base URL's host; writes the files atomically."""
    account_key = _load_or_create_account_key(acme_dir(config) / "account.pem")
    verify: bool | str = str(config.acme_ca_file) if config.acme_ca_file else True
    # acme passes verify_ssl on to requests' `verify`, which also takes a CA bundle path
    net = client.ClientNetwork(
        account_key,
        alg=ES256,
        verify_ssl=verify,  # type: ignore[arg-type]
        user_agent="sp2p-server",
    )
    directory = client.ClientV2.get_directory(config.acme_directory, net)
    acme = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(
        email=config.acme_email or None, terms_of_service_agreed=True
    )
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:  # this key already has an account
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    order = acme.new_order(crypto_util.make_csr(key_pem, [config.acme_host]))
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue
        chall = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
        if chall is None:
            raise ConfigError("ACME server offered no http-01 challenge")
        response, validation = chall.response_and_validation(account_key)
        responder.tokens[chall.chall.path] = validation
        acme.answer_challenge(chall, response)
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=90)
    order = acme.poll_and_finalize(order, deadline)
    fullchain, privkey = cert_paths(config)
    write_atomic(privkey, key_pem.decode(), mode=0o600)
    write_atomic(fullchain, order.fullchain_pem)
    responder.tokens.clear()
    log.info("obtained a certificate for %s from %s", config.acme_host, config.acme_directory)


def _renewal_loop(config: ServerConfig, responder: ChallengeServer) -> None:
    stop = threading.Event()
    while not stop.wait(config.acme_check_interval):
        fullchain, _ = cert_paths(config)
        if not needs_renewal(fullchain, config.acme_renew_before):
            continue
        try:
            obtain(config, responder)
        except Exception as exc:  # keep serving the old certificate; retry next time
            log.warning("certificate renewal failed: %s", exc)


def start(config: ServerConfig) -> ChallengeServer:
    """Listener up, certificate present and fresh, renewal thread running."""
    parts = urlsplit(config.base_url or "")
    responder = ChallengeServer(config.acme_http_addr, f"https://{parts.netloc}")
    fullchain, _ = cert_paths(config)
    if needs_renewal(fullchain, config.acme_renew_before):
        try:
            obtain(config, responder)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"ACME: could not obtain a certificate: {_one_line(exc)}") from None
    threading.Thread(
        target=_renewal_loop, args=(config, responder), name="sp2p-acme-renew", daemon=True
    ).start()
    return responder


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]
