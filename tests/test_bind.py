"""Every server the workbench starts listens on loopback only, as the OS reports it.

Each server is started the way the product starts it, then every socket of its whole process
tree that waits for others (TCP in LISTEN, UDP with no peer; psutil's `net_connections`) must be
on 127.0.0.1 or ::1, and there must be at least one (a check of nothing proves nothing):
- the embedded llama.cpp teacher (`vstw teacher serve`, `vstw demo`: teacher_server.start_server);
- the simulated teacher in the background (`vstw teacher simulate`: teacher_sim.start_simulator);
- a local Ray as the Ray runner starts it (RayRunner.connect), with workers running;
- Label Studio (`vstw review serve`: the session's server of tests/conftest.py, shared with
  test_review.py);
- and headless Chromium as the page checks drive it (annotation.browser: Selenium through
  chromedriver): chromedriver's WebDriver port and Chromium's DevTools port.

Label Studio takes longest to start, so it boots while the others are checked.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image
from _process_tools import beyond_loopback, kill_tree, listening_sockets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def label_studio_boots_meanwhile(ls_starting):
    """Starts the session's Label Studio (conftest.py) before the first test of this module."""
    return ls_starting


def assert_loopback_only(listeners: list[dict], what: str) -> None:
    assert listeners, f"{what}: no listening socket found, so nothing was checked"
    exposed = beyond_loopback(listeners)
    assert not exposed, f"{what} listens beyond loopback: {exposed}"


# ---- the teachers -------------------------------------------------------------------------------
def test_embedded_llama_cpp_teacher_listens_on_loopback_only(tmp_path):
    pytest.importorskip("llama_cpp")
    from pipelines.teacher_server import start_server, stop_server

    info = start_server(tmp_path)
    try:
        listeners = listening_sockets(info.pid)
        assert_loopback_only(listeners, "the llama.cpp teacher")
        assert info.port in {entry["port"] for entry in listeners}, listeners
    finally:
        stop_server(tmp_path)
    assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == psutil.STATUS_ZOMBIE


def test_simulated_teacher_listens_on_loopback_only(tmp_path):
    from pipelines.teacher_sim import start_simulator, stop_simulator

    info = start_simulator(tmp_path, port=0, rate=0.1, log_path=tmp_path / "injections.jsonl")
    try:
        listeners = listening_sockets(info.pid)
        assert_loopback_only(listeners, "the simulated teacher")
        assert [(entry["proto"], entry["ip"], entry["port"]) for entry in listeners] == [("tcp", "127.0.0.1", info.port)]
    finally:
        stop_simulator(tmp_path)


# ---- a local Ray ----------------------------------------------------------------------------------
# A driver as `vstw run` with `runner.kind: ray` is one: RayRunner.connect starts a local Ray, a
# small Ray Data job starts its workers; the sockets are then read from outside, by the test.
RAY_DRIVER = """
import sys
from pipelines.runners.ray_runner import RayRunner
runner = RayRunner(workers=1, progress=False)
runner.connect()
import ray.data
assert ray.data.range(8).map_batches(lambda b: {"id": b["id"] + 1}).sum("id") == 36
print("ready", flush=True)
sys.stdin.readline()
runner.close()
"""


def wait_for_line(proc: subprocess.Popen, line: str, timeout_s: float) -> bool:
    """Whether `proc` printed `line` within `timeout_s` (False as soon as it exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            got = proc.stdout.readline()
            if got.strip() == line:
                return True
            if not got:  # end of output: it exited
                return False
    return False


def test_local_ray_listens_on_loopback_only(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    with open(tmp_path / "driver.log", "w+") as log:
        proc = subprocess.Popen([sys.executable, "-c", RAY_DRIVER], env=env, cwd=tmp_path, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True)  # fmt: skip
        try:
            if not wait_for_line(proc, "ready", 300):
                log.seek(0)
                pytest.fail(f"the Ray driver did not get ready (exit code {proc.poll()}):\n{log.read()[-3000:]}")
            listeners = listening_sockets(proc.pid)
            names = {entry["name"] for entry in listeners}
            assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), names  # Ray's servers were seen
            assert_loopback_only(listeners, "a local Ray")
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.wait(timeout=120) == 0
        finally:
            kill_tree(proc.pid)  # a no-op after a clean exit; Ray's processes too otherwise
            proc.wait(timeout=30)


# ---- review --------------------------------------------------------------------------------------
def session_processes(driver) -> list[psutil.Process]:
    """chromedriver (the Selenium service) and every process it started: Chromium and its helpers."""
    root = psutil.Process(driver.service.process.pid)
    return [root, *root.children(recursive=True)]


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    running = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                running.append(proc)
        except psutil.NoSuchProcess:
            pass
    return running


def test_headless_chromium_and_chromedriver_listen_on_loopback_only(tmp_path):
    """The page checks (review page, chain gallery) drive Chromium through chromedriver, as here
    on a page from disk: chromedriver serves WebDriver on a port, Chromium its DevTools on
    another; every listening socket of their process tree is on loopback, and the tree is gone
    once the session ends, also when its block raised."""
    from selenium.webdriver.common.by import By

    from annotation.browser import chromium, is_blank_png, open_file, screenshot

    page = tmp_path / "page.html"
    page.write_text("<body style='margin:0'><h1 id=ready>ready</h1></body>")
    with chromium(width=800, height=600) as driver:
        open_file(driver, page)
        assert driver.find_element(By.ID, "ready").text == "ready"
        procs = session_processes(driver)
        assert {"chromedriver", "chromium"} <= {p.name() for p in procs}, [p.name() for p in procs]
        listeners = listening_sockets(driver.service.process.pid)
        assert_loopback_only(listeners, "chromedriver and headless Chromium")
        devtools_port = int(driver.capabilities["goog:chromeOptions"]["debuggerAddress"].rsplit(":", 1)[1])
        by_port = {(entry["name"], entry["port"]) for entry in listeners}
        assert ("chromedriver", driver.service.port) in by_port, listeners
        assert ("chromium", devtools_port) in by_port, listeners
        shot = screenshot(driver, tmp_path / "page.png")
        with Image.open(shot) as image:
            assert image.size == (800, 600)
        assert not is_blank_png(shot)
        driver.get("about:blank")
        assert is_blank_png(screenshot(driver, tmp_path / "blank.png"))
    assert still_running(procs) == []

    with pytest.raises(RuntimeError, match="the block failed"):
        with chromium() as driver:
            procs = session_processes(driver)
            raise RuntimeError("the block failed")
    assert len(procs) > 1 and still_running(procs) == []


def test_label_studio_listens_on_loopback_only(label_studio):
    info = label_studio["info"]
    listeners = listening_sockets(info.pid)
    assert_loopback_only(listeners, "Label Studio")
    assert info.port in {entry["port"] for entry in listeners}, listeners
