"""A minimal WebDriver BiDi client for Debian's Firefox ESR (no geckodriver, no npm).

Firefox speaks WebDriver BiDi itself when started with `--remote-debugging-port`; Playwright's
own BiDi backend targets newer Firefox builds (it calls commands ESR lacks), and its patched
Firefox cannot be downloaded here. So the tests talk BiDi directly over websocket-client, which
is already a dependency. `launch_firefox` starts the browser with a throw-away profile whose
prefs keep it offline and let WebRTC use 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websocket

FIREFOX_CANDIDATES = ("firefox-esr", "firefox")
_LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")

#: Offline and quiet: no update, telemetry, remote settings, safe browsing or captive-portal
#: traffic (tests only talk to loopback). Then what the UI needs on loopback: host candidates
#: on 127.0.0.1 in clear (no mDNS), no media permission prompt.
PREFS: dict[str, bool | int | str] = {
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.update.disabledForTesting": True,
    "app.update.checkInstallTime": False,
    "browser.aboutwelcome.enabled": False,
    "browser.discovery.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.search.geoip.url": "",
    "browser.search.update": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.translations.automaticallyPopup": False,
    "browser.urlbar.suggest.searches": False,
    "captivedetect.canonicalURL": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.usage.uploadEnabled": False,
    "dom.push.connection.enabled": False,
    "dom.push.serverURL": "",
    "extensions.getAddons.cache.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.update.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.http.speculative-parallel-limit": 0,
    "network.prefetch-next": False,
    "network.trr.mode": 5,
    "services.settings.server": "http://127.0.0.1:9/remote-settings",
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.unified": False,
    # WebRTC on loopback (Firefox's equivalent of Chromium's loopback flag + permission).
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # Downloads go to the folder set with browser.setDownloadBehavior, never to a dialog.
    "browser.download.always_ask_before_handling_new_types": False,
    "browser.download.folderList": 2,
    "browser.download.useDownloadDir": True,
    "browser.download.panel.shown": True,
    "browser.download.start_downloads_in_tmp_dir": False,
}


class BidiError(RuntimeError):
    """A BiDi command answered with an error."""


def firefox_path() -> str:
    for name in FIREFOX_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Debian firefox-esr is missing: apt-get install firefox-esr")


def firefox_version() -> str:
    out = subprocess.run([firefox_path(), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


class BidiConnection:
    """One BiDi session over a WebSocket. Commands block for their answer; events are handed to
    subscribers on a separate thread, so a handler may itself send commands."""

    def __init__(self, url: str) -> None:
        # Firefox refuses WebSocket upgrades that carry an Origin it was not told to allow.
        self._ws = websocket.create_connection(url, suppress_origin=True, timeout=None)
        self._next_id = 0
        self._lock = threading.Lock()
        self._pending: dict[int, queue.SimpleQueue[dict[str, Any]]] = {}
        self._handlers: dict[str, list[Callable[[dict[str, Any]], None]]] = defaultdict(list)
        self._events: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="bidi-reader", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch, name="bidi-events", daemon=True)
        self._reader.start()
        self._dispatcher.start()

    def _read(self) -> None:
        try:
            while True:
                raw = self._ws.recv()
                if not raw:
                    break
                msg = json.loads(raw)
                if msg.get("type") == "event":
                    self._events.put(msg)
                    continue
                with self._lock:
                    waiter = self._pending.pop(msg.get("id", -1), None)
                if waiter is not None:
                    waiter.put(msg)
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            self.closed.set()
            self._events.put(None)
            with self._lock:
                waiters = list(self._pending.values())
                self._pending.clear()
            for waiter in waiters:
                waiter.put({"type": "error", "error": "closed", "message": "browser connection closed"})

    def _dispatch(self) -> None:
        while (msg := self._events.get()) is not None:
            for handler in list(self._handlers.get(msg.get("method", ""), ())):
                with contextlib.suppress(Exception):  # one bad handler must not stop the others
                    handler(msg.get("params", {}))

    def on(self, method: str, handler: Callable[[dict[str, Any]], None]) -> None:
        self._handlers[method].append(handler)

    def off(self, method: str, handler: Callable[[dict[str, Any]], None]) -> None:
        if handler in self._handlers.get(method, []):
            self._handlers[method].remove(handler)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 120.0) -> dict[str, Any]:
        waiter: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._lock:
            if self.closed.is_set():
                raise BidiError(f"{method}: browser connection closed")
            self._next_id += 1
            msg_id = self._next_id
            self._pending[msg_id] = waiter
            self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        try:
            answer = waiter.get(timeout=timeout)
        except queue.Empty:
            with self._lock:
                self._pending.pop(msg_id, None)
            raise BidiError(f"{method}: no answer within {timeout:.0f} s") from None
        if answer.get("type") != "success":
            raise BidiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def close(self) -> None:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self._ws.close()
        self._reader.join(5)
        self._dispatcher.join(5)


def _user_js(prefs: dict[str, bool | int | str]) -> str:
    return "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())


class FirefoxProcess:
    """`firefox-esr --headless` with a fresh profile, and a BiDi session to it."""

    def __init__(self, extra_prefs: dict[str, bool | int | str] | None = None) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="sp2p-firefox-"))
        (self.profile / "user.js").write_text(_user_js({**PREFS, **(extra_prefs or {})}))
        self.proc = subprocess.Popen(
            [firefox_path(), "--headless", "--no-remote", "--profile", str(self.profile),
             "--remote-debugging-port", "0", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self.log: list[str] = []
        url = self._wait_listening()
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            self.bidi = BidiConnection(url + "/session")
            caps = self.bidi.send("session.new", {"capabilities": {"alwaysMatch": {
                "unhandledPromptBehavior": {"default": "ignore"}}}})
        except Exception:
            self.kill()
            raise
        self.version = str(caps.get("capabilities", {}).get("browserVersion", ""))

    def _wait_listening(self) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            match = _LISTENING.search(line)
            if match:
                return match.group(1)
        self.kill()
        raise RuntimeError("Firefox exited before offering WebDriver BiDi:\n" + "".join(self.log[-30:]))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self.log) < 2000:
                self.log.append(line)

    def close(self) -> None:
        with contextlib.suppress(BidiError):
            if not self.bidi.closed.is_set():
                self.bidi.send("browser.close", timeout=20)
        self.bidi.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)
