"""A content-addressed cache of accepted teacher replies, on disk.

key = sha256 of (model, messages, request parameters, prompt version): never the API key, never
the server's address (a local server gets a new port each time; the reply does not change).
Only replies that passed validation are stored, so a failure is never replayed as an answer.
One small JSON file per key, written atomically: concurrent writers of the same key are harmless.
The folder is on the local disk, or on any `pyarrow.fs` filesystem (a remote run keeps its cache
beside its tables, e.g. on S3, where one PUT is atomic).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from pathlib import Path

import pyarrow.fs as pafs

from curation.storage import is_local, list_files, read_file, write_file


def cache_key(model: str, messages: list[dict], params: dict, prompt_version: str) -> str:
    payload = {"model": model, "messages": messages, "params": params, "prompt_version": prompt_version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ReplyCache:
    def __init__(self, folder: Path | str, fs: pafs.FileSystem | None = None):
        """`folder`: a local folder, or a path inside `fs` when one is given."""
        self.fs = fs or pafs.LocalFileSystem()
        self.location = str(Path(folder).absolute()) if is_local(self.fs) else str(folder)

    def path(self, key: str) -> str:
        return posixpath.join(self.location, key[:2], f"{key}.json")

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(read_file(self.fs, self.path(key)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged entry is a miss; the fresh reply overwrites it

    def put(self, key: str, entry: dict) -> None:
        write_file(self.fs, self.path(key), json.dumps(entry, sort_keys=True, ensure_ascii=False).encode())

    def __len__(self) -> int:
        return sum(1 for i in list_files(self.fs, self.location, recursive=True) if i.path.endswith(".json"))
