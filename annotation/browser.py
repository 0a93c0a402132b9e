"""Headless Chromium for the page tests: Selenium driving Debian's `chromium` through Debian's
`chromium-driver` (no downloaded browser or driver build; Selenium Manager is never run).

General use (a page from disk, scripts, clicks, a screenshot):

    with chromium(width=1200, height=800) as driver:      # a Selenium WebDriver
        open_file(driver, "out/gallery.html")
        assert wait_for(driver, "document.querySelectorAll('.card').length > 0", 30)
        driver.find_element(By.CSS_SELECTOR, ".card button").click()
        n = len(driver.find_elements(By.CSS_SELECTOR, ".card"))
        shot = screenshot(driver, "out/gallery.png")          # width x height, PNG
        assert not is_blank_png(shot)

Label Studio's review page (log in through its own form, open a task, capture what a reviewer
sees):

    page = render_page(url, email, password, "/projects/1/data?task=3", out_dir,
                       ready_js="document.querySelector('video') !== null")
    page.dom, page.screenshot, page.ready

chromedriver serves WebDriver on a loopback port and Chromium its DevTools on another loopback
port (tests/test_bind.py checks both). Leaving `chromium()` ends chromedriver and every browser
process, also when the block raised.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

# Besides chromedriver's own defaults: no GPU, nothing fetched or synced in the background.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
]
QUIT_TIMEOUT_S = 20.0  # for driver.quit(); whatever is left of the session is killed after it


class BrowserError(RuntimeError):
    """Chromium or chromedriver is missing or did not start, or a page did not do what was expected."""


@dataclass
class RenderedPage:
    url: str
    dom: str
    screenshot: Path
    ready: bool  # ready_js became true before the timeout


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name) or shutil.which(name, path="/usr/bin")
        if path:
            return path
    return None


def find_chromium() -> str:
    """Debian's Chromium (the build Debian's chromedriver matches)."""
    path = _find(("chromium", "chromium-browser"))
    if not path:
        raise BrowserError("no Chromium found: install Debian's package (`apt-get install -y chromium`)")
    return path


def find_chromedriver() -> str:
    path = _find(("chromedriver",))
    if not path:
        raise BrowserError("no chromedriver found: install Debian's package (`apt-get install -y chromium-driver`)")
    return path


def _session_processes(pgid: int) -> list[psutil.Process]:
    """The live processes of a session: chromedriver was started as leader of its own process
    group, Chromium and its helpers inherit it."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


def _end_session(driver: WebDriver | None, service: Service) -> None:
    """Quit the browser and chromedriver; then kill whatever of their process group is left."""
    process = getattr(service, "process", None)  # set once chromedriver was started
    if process is None:
        return
    if driver is not None:
        driver.command_executor.client_config.timeout = QUIT_TIMEOUT_S
        driver.quit()  # never raises; stops chromedriver (the service) too
    else:
        service.stop()
    pgid = process.pid
    deadline = time.monotonic() + 15.0
    while (left := _session_processes(pgid)) and time.monotonic() < deadline:
        for proc in left:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(left, timeout=1.0)
    if left:
        raise BrowserError(f"Chromium processes survived the end of the session: {[p.pid for p in left]}")


@contextmanager
def chromium(width: int = 1400, height: int = 1100, timeout: float = 60.0) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile and a width x height viewport, as a Selenium
    WebDriver; pages get `timeout` seconds to load and scripts to run. On exit (also on an
    error) the browser and chromedriver are gone."""
    options = webdriver.ChromeOptions()
    options.binary_location = find_chromium()
    service = Service(
        find_chromedriver(),
        log_output=subprocess.DEVNULL,
        popen_kw={"start_new_session": True},  # its own process group: Chromium's processes join it
    )
    with tempfile.TemporaryDirectory(prefix="vstw-chromium-") as profile:
        for flag in [*CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = None
        try:
            try:
                driver = webdriver.Chrome(service=service, options=options)
            except WebDriverException as err:
                raise BrowserError(f"Chromium did not start through chromedriver: {err.msg}") from err
            driver.command_executor.client_config.timeout = timeout + 30.0  # beyond the page's own timeouts
            driver.set_page_load_timeout(timeout)
            driver.set_script_timeout(timeout)
            # the window includes room for browser controls even when headless: size it so that
            # the page itself (and so a screenshot) is width x height
            extra_w, extra_h = driver.execute_script("return [outerWidth - innerWidth, outerHeight - innerHeight]")
            driver.set_window_size(width + extra_w, height + extra_h)
            yield driver
        finally:
            _end_session(driver, service)


def _open(driver: WebDriver, url: str) -> None:
    try:
        driver.get(url)
    except TimeoutException as err:
        raise BrowserError(f"{url} did not finish loading in time") from err


def open_file(driver: WebDriver, path: str | Path) -> str:
    """Open a local file (an HTML page on disk) and wait until it has loaded; returns its URL."""
    path = Path(path).resolve()
    if not path.is_file():
        raise BrowserError(f"no such file to open: {path}")
    url = path.as_uri()
    _open(driver, url)
    return url


def wait_for(driver: WebDriver, js_condition: str, timeout: float, interval: float = 0.25) -> bool:
    """Whether the JavaScript expression `js_condition` became truthy within `timeout` seconds
    (a page that is navigating, where the script cannot run, counts as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if driver.execute_script(f"return !!({js_condition});"):
                return True
        except JavascriptException:
            pass  # the page is navigating: its context is gone for a moment
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def screenshot(driver: WebDriver, path: str | Path) -> Path:
    """A PNG of what the page shows (the viewport), saved at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = driver.get_screenshot_as_png()
    if not png.startswith(b"\x89PNG"):
        raise BrowserError("Chromium returned no PNG screenshot")
    path.write_bytes(png)
    return path


def is_blank_png(path: str | Path) -> bool:
    """Whether an image is a single colour (every pixel the same): a page that drew nothing."""
    with Image.open(path) as image:
        return all(low == high for low, high in image.convert("RGBA").getextrema())


# ---- Label Studio ----------------------------------------------------------------------------
def login(driver: WebDriver, base_url: str, email: str, password: str, timeout: float = 60.0) -> None:
    """Log in through Label Studio's own login form, as a person would."""
    _open(driver, f"{base_url}/user/login/")
    if not wait_for(driver, "document.querySelector('input[name=email]') !== null", timeout):
        raise BrowserError(f"{base_url}/user/login/ shows no login form")
    driver.find_element(By.CSS_SELECTOR, "input[name=email]").send_keys(email)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password, Keys.ENTER)
    if not wait_for(driver, "!location.pathname.startsWith('/user/login') && document.readyState === 'complete'", timeout):
        raise BrowserError(f"logging in as {email} at {base_url} failed (still on the login page)")


@contextmanager
def logged_in(base_url: str, email: str, password: str, timeout: float = 60.0) -> Iterator[WebDriver]:
    """A headless Chromium (fresh profile) logged in to Label Studio; closed on exit."""
    with chromium(timeout=timeout) as driver:
        login(driver, base_url, email, password, timeout)
        yield driver


def capture(driver: WebDriver, out_dir: str | Path, name: str) -> tuple[str, Path]:
    """The page's DOM (also saved as NAME.html) and a screenshot NAME.png in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dom = driver.execute_script("return document.documentElement.outerHTML") or ""
    (out_dir / f"{name}.html").write_text(dom)
    return dom, screenshot(driver, out_dir / f"{name}.png")


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
    with logged_in(base_url, email, password, timeout) as driver:
        url = base_url + path
        _open(driver, url)
        ready = wait_for(driver, ready_js, timeout)
        time.sleep(1.0)  # let the player draw its first frame for the screenshot
        dom, shot = capture(driver, out_dir, name)
        return RenderedPage(url, dom, shot, ready)
