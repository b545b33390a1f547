"""Headless Chromium driven over the DevTools protocol: open pages, collect what went wrong.

Only what the site check needs: start Debian's ``chromium`` with a fresh
profile and no network of its own, open a page, wait for its load event,
and report console errors, uncaught exceptions, failed or non-2xx
requests, and requests for anything but the local server. The protocol is
JSON over a websocket (``websocket-client``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import websocket

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    """The path of a Chromium binary on PATH, or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


class Page:
    """One browser tab, spoken to over its DevTools websocket."""

    def __init__(self, socket: websocket.WebSocket) -> None:
        self._socket = socket
        self._next_id = 0

    def send(self, method: str, **params: Any) -> int:
        """Send a command; returns its ID."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        return self._next_id

    def call(self, method: str, *, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its result (events meanwhile are dropped)."""
        sent = self.send(method, **params)
        until = time.monotonic() + timeout
        while (message := self.receive(until)) is not None:
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
        raise TimeoutError(f"{method}: no answer within {timeout} s")

    def receive(self, until: float) -> dict[str, Any] | None:
        """The next message (event or command result), or None at ``until`` (monotonic)."""
        left = until - time.monotonic()
        if left <= 0:
            return None
        self._socket.settimeout(left)
        try:
            message: dict[str, Any] = json.loads(self._socket.recv())
        except websocket.WebSocketTimeoutException:
            return None
        return message

    def problems(self, url: str, origin: str, *, timeout: float = 15.0) -> list[str]:
        """Open ``url``; every console error, exception and bad request until it settles.

        It settles half a second after its load event (late scripts, fonts,
        images). A request for anything outside ``origin`` (or ``data:``) is
        a problem too: the site must load nothing from elsewhere.
        """
        self.send("Page.navigate", url=url)
        found: list[str] = []
        until = time.monotonic() + timeout
        loaded = False
        while (message := self.receive(until)) is not None:
            found.extend(_problem(message, origin))
            if message.get("method") == "Page.loadEventFired" and not loaded:
                loaded = True
                until = min(until, time.monotonic() + 0.5)
        if not loaded:
            found.append(f"{url}: no load event within {timeout} s")
        return found


def _problem(message: dict[str, Any], origin: str) -> list[str]:
    method = message.get("method")
    params = message.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text")
        return [f"exception: {text}"]
    if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        text = " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"])
        return [f"console.{params['type']}: {text}"]
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        entry = params["entry"]
        return [f"log: {entry['text']} {entry.get('url', '')}".rstrip()]
    if method == "Network.requestWillBeSent":
        url = params["request"]["url"]
        if not url.startswith((origin, "data:", "blob:", "about:")):
            return [f"request outside the site: {url}"]
    if method == "Network.loadingFailed" and not params.get("canceled"):
        return [f"failed to load: {params.get('errorText')} ({params['requestId']})"]
    if method == "Network.responseReceived":
        response = params["response"]
        if response["status"] >= 400:
            return [f"HTTP {response['status']}: {response['url']}"]
    return []


@contextmanager
def open_page(chromium: str) -> Iterator[Page]:
    """A fresh headless Chromium (empty profile) with one tab; closed on exit."""
    # Chromium's helpers (zygote, renderers, crash handler) outlive its main
    # process for a moment: it runs in a session of its own, whose processes
    # are all ended before the profile is removed.
    with tempfile.TemporaryDirectory(
        prefix="gorums-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = _devtools_port(Path(profile), process)
            request = Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
            with urlopen(request, timeout=10) as answer:
                target = json.load(answer)
            socket = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=10)
            try:
                page = Page(socket)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    page.call(f"{domain}.enable")  # on before the first navigation
                yield page
            finally:
                socket.close()
        finally:
            _end_session(process)


def _end_session(process: subprocess.Popen[bytes]) -> None:
    """End Chromium and every helper it started (its session's process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    end = time.monotonic() + 5
    while time.monotonic() < end:  # helpers are not our children: poll the group
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """The DevTools port Chromium chose, read from the file it writes into its profile."""
    active = profile / "DevToolsActivePort"
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with status {process.returncode}")
        if active.exists() and (lines := active.read_text().split()):
            return int(lines[0])
        time.sleep(0.05)
    raise TimeoutError("chromium wrote no DevToolsActivePort within 20 s")
