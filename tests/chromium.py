"""Headless Chromium driven through its DevTools protocol, with the standard library only.

`--remote-debugging-pipe` makes Chromium read protocol messages from fd 3 and write them to
fd 4, each a JSON object ended by a NUL byte: no websocket client needed. Each page gets its
own session (`Target.attachToTarget` with `flatten`), and everything it says to the console,
every uncaught exception and every request it makes are kept, so a test can assert there were
no errors and no network.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# The flags this machine's notes give for a closed network: no background connections, no
# first-run work, no GPU; a fresh profile per browser.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-pipe",
]  # fmt: skip


def _onto_3_and_4(read_end: int, write_end: int) -> None:
    """In the child: the protocol pipe where Chromium looks for it (dup first: either end
    may already be fd 3 or 4)."""
    read_end, write_end = os.dup(read_end), os.dup(write_end)
    os.dup2(read_end, 3)
    os.dup2(write_end, 4)


class Chromium:
    def __init__(self, profile: Path, width: int = 1280, height: int = 800) -> None:
        to_child, self._send_fd = os.pipe()
        self._recv_fd, from_child = os.pipe()
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=lambda: _onto_3_and_4(to_child, from_child),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helpers (zygote, renderers) in one group of ours
        )  # fmt: skip
        os.close(to_child)
        os.close(from_child)
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._next = 0
        self._reader = threading.Thread(target=self._read, daemon=True, name="chromium")
        self._reader.start()

    def _read(self) -> None:
        pending = b""
        while chunk := os.read(self._recv_fd, 1 << 16):
            pending += chunk
            *messages, pending = pending.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        key = self._next
        message: dict[str, Any] = {"id": key, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: key in self._replies, timeout=30):
                raise TimeoutError(f"Chromium did not answer {method} in 30 s")
            reply = self._replies.pop(key)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    def page(self, offline: bool = False) -> Page:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session)
        if offline:
            self.send(
                "Network.emulateNetworkConditions",
                session,
                offline=True,
                latency=0,
                downloadThroughput=-1,
                uploadThroughput=-1,
            )
        return Page(self, session)

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except (TimeoutError, RuntimeError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            os.close(self._send_fd)
            self._reader.join(timeout=5)
            os.close(self._recv_fd)


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session

    def _events(self, *methods: str) -> list[dict[str, Any]]:
        with self.browser._cond:
            return [
                e["params"]
                for e in self.browser.events
                if e.get("sessionId") == self.session and e["method"] in methods
            ]

    def open(self, url: str) -> None:
        self.browser.send("Page.navigate", self.session, url=url)

    def evaluate(self, expression: str) -> Any:
        reply = self.browser.send(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"in the page: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, ready: Callable[[Any], bool], timeout: float = 30) -> Any:
        """Evaluate `expression` until `ready(value)`; the last value either way."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if ready(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.25)

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries (failed
        requests, CSP violations, ...), as text."""
        found = [
            e["exceptionDetails"].get("exception", {}).get("description")
            or e["exceptionDetails"]["text"]
            for e in self._events("Runtime.exceptionThrown")
        ]
        found += [
            " ".join(str(a.get("value", a.get("description", ""))) for a in e["args"])
            for e in self._events("Runtime.consoleAPICalled")
            if e["type"] in ("error", "assert")
        ]
        found += [
            f"{e['entry']['text']} ({e['entry'].get('url', '')})"
            for e in self._events("Log.entryAdded")
            if e["entry"]["level"] == "error"
        ]
        return found

    def requests(self) -> list[str]:
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def screenshot(self) -> bytes:
        data = self.browser.send("Page.captureScreenshot", self.session, format="png")["data"]
        return base64.b64decode(data)


# What a page looks up inside TensorBoard's web components: every element matching a CSS
# selector, through every shadow root below `root`.
DEEP = """
function deep(root, selector, out = []) {
  const roots = root.shadowRoot ? [root, root.shadowRoot] : [root];
  for (const r of roots) {
    for (const el of r.querySelectorAll("*")) {
      if (el.matches(selector)) out.push(el);
      if (el.shadowRoot) deep(el.shadowRoot, selector, out);
    }
  }
  return out;
}
"""


def not_blank(png: bytes, colours: int = 8, spread: float = 10.0) -> bool:
    """A screenshot with something drawn: several colours and some contrast."""
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
        count = len(image.convert("RGB").getcolors(1 << 24) or [])
        return count >= colours and ImageStat.Stat(grey).stddev[0] >= spread
