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
import os
import posixpath
import tempfile
from pathlib import Path

import pyarrow.fs as pafs


def cache_key(model: str, messages: list[dict], params: dict, prompt_version: str) -> str:
    payload = {"model": model, "messages": messages, "params": params, "prompt_version": prompt_version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ReplyCache:
    def __init__(self, folder: Path | str, fs: pafs.FileSystem | None = None):
        """`folder`: a local folder, or a path inside `fs` when one is given."""
        self.fs = fs if fs is not None and not isinstance(fs, pafs.LocalFileSystem) else None
        self.folder = Path(folder) if self.fs is None else None
        self.location = str(folder)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def _remote_path(self, key: str) -> str:
        return posixpath.join(self.location, key[:2], f"{key}.json")

    def get(self, key: str) -> dict | None:
        try:
            if self.fs is not None:
                with self.fs.open_input_stream(self._remote_path(key)) as src:
                    return json.loads(src.read())
            return json.loads(self.path(key).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged entry is a miss; the fresh reply overwrites it

    def put(self, key: str, entry: dict) -> None:
        if self.fs is not None:
            if not isinstance(self.fs, (pafs.S3FileSystem, pafs.GcsFileSystem)):
                self.fs.create_dir(posixpath.join(self.location, key[:2]), recursive=True)
            with self.fs.open_output_stream(self._remote_path(key)) as out:  # one PUT: atomic
                out.write(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode())
            return
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(entry, fh, sort_keys=True, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        if self.fs is not None:
            infos = self.fs.get_file_info(pafs.FileSelector(self.location, allow_not_found=True, recursive=True))
            return sum(1 for i in infos if i.type == pafs.FileType.File and i.path.endswith(".json"))
        return sum(1 for _ in self.folder.glob("*/*.json")) if self.folder.is_dir() else 0
