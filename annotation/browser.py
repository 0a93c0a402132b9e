"""Open a Label Studio page in headless Chromium, logged in, and capture what a reviewer sees.

Used to check that the labeling config really renders (video player, clip segments on the
timeline). Chromium is driven through the DevTools protocol over a pipe
(`--remote-debugging-pipe`: messages are JSON, NUL-terminated, on file descriptors 3 and 4), so
no browser-automation package or downloaded browser build is needed: Debian's `chromium` works.

    page = render_page(url, email, password, "/projects/1/data?task=3", out_dir,
                       ready_js="document.querySelector('video') !== null")
    page.dom, page.screenshot, page.ready
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--window-size=1400,1100",
    "--remote-debugging-pipe",
]


class BrowserError(RuntimeError):
    """Chromium is missing, crashed, or a page did not do what was expected."""


@dataclass
class RenderedPage:
    url: str
    dom: str
    screenshot: Path
    ready: bool  # ready_js became true before the timeout


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no Chromium found: install Debian's package (`apt-get install -y chromium`)")


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, chromium: str, user_data_dir: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4: the shell moves our pipe
        # ends there (whatever numbers they got) and closes the originals before exec.
        r, w = to_browser_r, from_browser_w
        # (through 100/101, since the pipe ends may themselves be fds 3 or 4).
        wire = f'exec 100<&{r} 101>&{w} {r}<&- {w}>&-; exec "$0" "$@" 3<&100 4>&101 100<&- 101>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", wire, chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(r, w),
            start_new_session=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium closed its pipe (exit code {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: bool = True, timeout: float = 60.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:  # events arrive in between: skip them
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def attach_page(self) -> None:
        targets = self.send("Target.getTargets", session=False)["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        target_id = page["targetId"] if page else self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True}, session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}: {expression[:120]}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(expression):
                    return True
            except BrowserError:
                pass  # the page is navigating: its context is gone for a moment
            time.sleep(0.5)
        return False

    def navigate(self, url: str, timeout: float = 60.0) -> None:
        self.send("Page.navigate", {"url": url})
        if not self.wait_for("document.readyState === 'complete'", timeout):
            raise BrowserError(f"{url} did not finish loading in {timeout:.0f} s")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 15)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=15)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass


def login(browser: DevTools, base_url: str, email: str, password: str, timeout: float = 60.0) -> None:
    """Log in through Label Studio's own login form, as a person would."""
    browser.navigate(f"{base_url}/user/login/", timeout)
    if not browser.wait_for("document.querySelector('input[name=email]') !== null", timeout):
        raise BrowserError(f"{base_url}/user/login/ shows no login form")
    browser.evaluate(
        "(() => { const f = document.querySelector('input[name=email]').form;"
        f" f.querySelector('input[name=email]').value = {json.dumps(email)};"
        f" f.querySelector('input[name=password]').value = {json.dumps(password)};"
        " f.submit(); return true; })()"
    )
    if not browser.wait_for("!location.pathname.startsWith('/user/login') && document.readyState === 'complete'", timeout):
        raise BrowserError(f"logging in as {email} at {base_url} failed (still on the login page)")


@contextmanager
def logged_in(base_url: str, email: str, password: str, timeout: float = 60.0) -> Iterator[DevTools]:
    """A headless Chromium (fresh profile) logged in to Label Studio; closed on exit."""
    with tempfile.TemporaryDirectory(prefix="vstw-chromium-") as profile:
        browser = DevTools(find_chromium(), Path(profile))
        try:
            browser.attach_page()
            login(browser, base_url, email, password, timeout)
            yield browser
        finally:
            browser.close()


def capture(browser: DevTools, out_dir: Path, name: str) -> tuple[str, Path]:
    """The page's DOM (also saved as NAME.html) and a screenshot NAME.png in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dom = browser.evaluate("document.documentElement.outerHTML") or ""
    (out_dir / f"{name}.html").write_text(dom)
    return dom, browser.screenshot(out_dir / f"{name}.png")


def render_page(
    base_url: str,
    email: str,
    password: str,
    path: str,
    out_dir: Path,
    ready_js: str = "true",
    timeout: float = 120.0,
    name: str = "page",
) -> RenderedPage:
    """Log in, open base_url + path, wait until ready_js is true, save DOM and a screenshot."""
    with logged_in(base_url, email, password, timeout) as browser:
        url = base_url + path
        browser.navigate(url, timeout)
        ready = browser.wait_for(ready_js, timeout)
        time.sleep(1.0)  # let the player draw its first frame for the screenshot
        dom, shot = capture(browser, out_dir, name)
        return RenderedPage(url, dom, shot, ready)
