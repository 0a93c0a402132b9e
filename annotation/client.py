"""Connecting to a Label Studio (ours or a team's) with clear errors for the usual faults.

The SDK's own errors for a server that is down or a token that is refused are long tracebacks;
a reviewer needs one line that says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotation import server

LABEL_CONFIG_PATH = Path(__file__).with_name("labeling_config.xml")


class ReviewError(RuntimeError):
    """A review command cannot go on (server down, token refused, bad input): the message says why."""


@dataclass(frozen=True)
class Connection:
    client: LabelStudio
    url: str
    document_root: Path | None  # where /data/local-files/ serves from (None: unknown)


def label_config() -> str:
    return LABEL_CONFIG_PATH.read_text()


def describe_api_error(err: Exception, url: str) -> str:
    """One line for an SDK/HTTP error: unreachable, refused token, or the server's own message."""
    if isinstance(err, httpx.TransportError):
        return f"cannot reach Label Studio at {url} ({type(err).__name__}: {err}); start it with `vstw review serve` or check --url"
    if isinstance(err, ApiError):
        if err.status_code in (401, 403):
            return f"Label Studio at {url} refused the API token (HTTP {err.status_code}); set VSTW_LS_TOKEN to a valid token of that server"
        body = err.body if isinstance(err.body, (str, dict, list)) else repr(err.body)
        return f"Label Studio at {url} answered HTTP {err.status_code}: {str(body)[:500]}"
    return f"{type(err).__name__}: {err}"


def connect(url: str, token: str, document_root: Path | None = None, timeout: float = 60.0) -> Connection:
    """A checked connection: the server answers and accepts the token, or ReviewError."""
    url = url.rstrip("/")
    client = LabelStudio(base_url=url, api_key=token, timeout=timeout)
    try:
        client.users.whoami()
    except (httpx.HTTPError, ApiError) as err:
        raise ReviewError(describe_api_error(err, url)) from None
    return Connection(client, url, Path(document_root).resolve() if document_root else None)


def connect_local_or_remote(home: Path, url: str | None = None, document_root: Path | None = None) -> Connection:
    """`--url` + VSTW_LS_TOKEN for a team's server; else the server `vstw review serve` started."""
    if url:
        token = os.environ.get("VSTW_LS_TOKEN")
        if not token:
            raise ReviewError(f"--url {url} needs an API token in the environment variable VSTW_LS_TOKEN")
        root = document_root or (Path(os.environ["VSTW_LS_DOCUMENT_ROOT"]) if os.environ.get("VSTW_LS_DOCUMENT_ROOT") else None)
        return connect(url, token, root)
    state = home / "server.json"
    info = server.status(home)
    if info is None:
        why = "is not running" if state.exists() else "was never started"
        raise ReviewError(f"the local Label Studio ({home}) {why}: start it with `vstw review serve`, or pass --url of another server")
    creds = server.load_credentials(home)
    return connect(info.url, creds.token, document_root or Path(info.document_root))
