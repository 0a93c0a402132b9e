"""A local Label Studio for reviewing chains: create its environment, start it, stop it.

Label Studio runs from its own virtual environment (`.venv-ls`, made by setup-ls-env.sh) because
it pins openai<2 and pyarrow<25, which the workbench cannot use. It is only ever a subprocess:

    data/label-studio/            its database, media, log and our state files (git-ignored)
      server.json                 pid, port, url, document root of the running server
      last-port                   the port of the last start, reused when free
      credentials.json            admin user, password, API token, Django secret (mode 0600)
      label-studio.log            the server's output

A new home starts from a copy of an empty migrated database that setup-ls-env.sh builds once
(seconds instead of minutes of migrations). The admin user and its API token are created at the
FIRST start from environment variables, so no manual step is needed. The token is
`VSTW_LS_TOKEN` when set, else generated once and kept only in credentials.json (0600), never in
a run folder or an export. Videos are served through Label Studio's local-files storage from a
document root (default: the project's `data/` folder; `VSTW_LS_DOCUMENT_ROOT` or
`--document-root` to change it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

LS_VERSION = "1.23.2"
DEFAULT_USERNAME = "admin@vstw.local"
# A first start from the database template takes ~20 s here; without it Label Studio runs all its
# migrations: ~25 s on an idle machine, 100-140 s on this shared 2-core one.
START_TIMEOUT_S = 600.0


class ServerError(RuntimeError):
    """Label Studio could not be set up, started, reached or stopped (the message says why)."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    token: str
    secret_key: str  # Django's: kept so that browser sessions survive a restart


@dataclass(frozen=True)
class ServerInfo:
    url: str
    port: int
    pid: int
    document_root: str
    data_dir: str
    log_path: str


# ---- paths ------------------------------------------------------------------------------
# `home` below is the server's data folder: data/label-studio/ of the project (tests use a
# temporary one). The environment belongs to the checkout, not to a home.
REPO_ROOT = Path(__file__).resolve().parents[1]


def home_dir(project_root: Path) -> Path:
    return Path(project_root) / "data" / "label-studio"


def venv_dir() -> Path:
    return Path(os.environ.get("VSTW_LS_VENV", REPO_ROOT / ".venv-ls"))


def default_document_root(project_root: Path) -> Path:
    return Path(os.environ.get("VSTW_LS_DOCUMENT_ROOT", Path(project_root) / "data")).resolve()


def _state_path(home: Path) -> Path:
    return Path(home) / "server.json"


# ---- environment ------------------------------------------------------------------------
def db_template() -> Path:
    """An empty, migrated database built by setup-ls-env.sh: new homes start from a copy."""
    return venv_dir() / "vstw-db-template" / "label_studio.sqlite3"


def ensure_env() -> Path:
    """The label-studio executable of .venv-ls, creating the environment (and its database
    template) when missing."""
    exe = venv_dir() / "bin" / "label-studio"
    if exe.exists() and db_template().exists():
        return exe
    script = Path(__file__).with_name("setup-ls-env.sh")
    env = {**os.environ, "VSTW_LS_VENV": str(venv_dir()), "LS_VERSION": LS_VERSION}
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    if result.returncode != 0 or not exe.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ServerError(f"could not create {venv_dir()} with label-studio=={LS_VERSION}:\n{tail}")
    return exe


def _write_private_json(path: Path, obj: dict) -> None:
    """Write a JSON file readable by its owner only (it holds a password and a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_credentials(home: Path) -> Credentials:
    """Admin credentials: environment variables first, else credentials.json, generated once."""
    path = Path(home) / "credentials.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    creds = Credentials(
        username=os.environ.get("VSTW_LS_USERNAME") or stored.get("username") or DEFAULT_USERNAME,
        password=os.environ.get("VSTW_LS_PASSWORD") or stored.get("password") or secrets.token_urlsafe(18),
        token=os.environ.get("VSTW_LS_TOKEN") or stored.get("token") or secrets.token_hex(20),
        secret_key=stored.get("secret_key") or secrets.token_urlsafe(40),
    )
    # Only what did not come from the environment is stored: an env secret never lands in a file.
    keep = {
        "username": creds.username,
        "password": None if os.environ.get("VSTW_LS_PASSWORD") else creds.password,
        "token": None if os.environ.get("VSTW_LS_TOKEN") else creds.token,
        "secret_key": creds.secret_key,
    }
    keep = {k: v for k, v in keep.items() if v is not None}
    if keep != stored:
        _write_private_json(path, keep)
    return creds


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, creds: Credentials, document_root: Path) -> dict[str, str]:
    """The environment Label Studio starts with (nothing of the workbench's venv leaks in)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(
        {
            "PATH": f"{venv_dir() / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "LABEL_STUDIO_BASE_DATA_DIR": str(home),
            "LABEL_STUDIO_USERNAME": creds.username,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_USER_TOKEN": creds.token,
            # The legacy token is only honoured if this was on when the organisation was created.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LATEST_VERSION_CHECK": "false",  # else it calls out to PyPI at every start
            "COLLECT_ANALYTICS": "false",
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
            "SECRET_KEY": creds.secret_key,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# ---- lifecycle --------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def healthy(url: str, timeout: float = 3.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def status(home: Path) -> ServerInfo | None:
    """The server started with this home, if it is running and healthy."""
    path = _state_path(home)
    if not path.exists():
        return None
    info = ServerInfo(**json.loads(path.read_text()))
    if _alive(info.pid) and healthy(info.url):
        return info
    return None


def _seed_database(home: Path) -> None:
    """A new home gets a copy of the migrated template: minutes of migrations saved. The admin
    user, organisation and token are still created by Label Studio at this first start."""
    db = home / "label_studio.sqlite3"
    if db.exists() or not db_template().exists():
        return
    tmp = home / ".label_studio.sqlite3.tmp"
    shutil.copyfile(db_template(), tmp)
    os.replace(tmp, db)


def _last_port(home: Path) -> int | None:
    """The port of the previous start, if still free: reviewers' bookmarks keep working."""
    try:
        port = int((home / "last-port").read_text())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
        return port
    except (OSError, ValueError):
        return None


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(home: Path, document_root: Path, port: int | None = None, timeout: float = START_TIMEOUT_S) -> ServerInfo:
    """Start Label Studio on 127.0.0.1 (or return the one already running) and wait for /health."""
    folder = Path(home).resolve()
    running = status(folder)
    if running is not None:
        return running
    exe = ensure_env()
    document_root = Path(document_root).resolve()
    if not document_root.is_dir():
        raise ServerError(f"document root {document_root} is not a folder: videos are served from under it")
    folder.mkdir(parents=True, exist_ok=True)
    _seed_database(folder)
    creds = load_credentials(folder)
    port = port or _last_port(folder) or free_port()
    (folder / "last-port").write_text(str(port))
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "label-studio.log"
    cmd = [str(exe), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1", "--host", url]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            env=server_env(folder, creds, document_root),
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as one, untouched by our Ctrl-C
        )
    info = ServerInfo(url, port, proc.pid, str(document_root), str(folder), str(log_path))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"Label Studio exited with code {proc.returncode} while starting; log {log_path}:\n{_log_tail(log_path)}")
        if healthy(url, timeout=2.0):
            atomic_state = _state_path(folder)
            tmp = atomic_state.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(info), indent=2))
            os.replace(tmp, atomic_state)
            return info
        time.sleep(1.0)
    _terminate(proc.pid)
    raise ServerError(f"Label Studio did not answer {url}/health within {timeout:.0f} s; log {log_path}:\n{_log_tail(log_path)}")


def _terminate(pid: int, grace_s: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child: reap it
                    return
            except ChildProcessError:
                if not _alive(pid):
                    return
            time.sleep(0.2)


def stop(home: Path) -> ServerInfo | None:
    """Stop the server started with this home, by the PID in server.json; None if none was running."""
    path = _state_path(home)
    if not path.exists():
        return None
    info = ServerInfo(**json.loads(path.read_text()))
    running = _alive(info.pid)
    if running:
        _terminate(info.pid)
    path.unlink(missing_ok=True)
    return info if running else None
