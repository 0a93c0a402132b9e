"""A real S3 API on 127.0.0.1 (moto's stand-alone server, spoken to over HTTP by pyarrow's S3
client exactly as AWS or MinIO would be), for run folders at s3:// URIs."""

from __future__ import annotations

import logging
import socket
import uuid

import pyarrow.fs as pafs

ACCESS_KEY = "vstw-test-access-key-7f3a"
SECRET_KEY = "vstw-test-secret-key-do-not-write-91c2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalS3:
    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def __enter__(self) -> "LocalS3":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a user sets to point the project at an S3-compatible store: nothing goes in a
        recipe or a URI."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=self.endpoint,
                                 scheme="http", region="us-east-1", allow_bucket_creation=True)

    def new_bucket(self) -> str:
        name = f"vstw-{uuid.uuid4().hex[:12]}"
        self.filesystem().create_dir(name)
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        fs = self.filesystem()
        infos = fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
        out = {}
        for info in infos:
            if info.type == pafs.FileType.File:
                with fs.open_input_stream(info.path) as src:
                    out[info.path[len(bucket) + 1:]] = src.read()
        return out
