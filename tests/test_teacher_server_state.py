"""`base_url: embedded` resolves to the recorded llama.cpp server while its process lives, even
when the server is too busy to answer a health probe (it answers nothing while it generates)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from curation.teacher.config import TeacherConfigError
from pipelines.teacher_server import embedded_base_url, is_healthy, read_state, state_path


def test_a_busy_embedded_teacher_is_still_the_teacher_and_a_dead_one_is_not(tmp_path, monkeypatch):
    monkeypatch.delenv("VSTW_TEACHER_URL", raising=False)
    busy = socket.socket()  # listens, never answers: like llama.cpp's server mid-generation
    busy.bind(("127.0.0.1", 0))
    busy.listen(8)
    port = busy.getsockname()[1]
    # a process whose command line names llama_cpp.server, as the real one's does
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "llama_cpp.server"])
    try:
        url = f"http://127.0.0.1:{port}/v1"
        path = state_path(tmp_path)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"pid": proc.pid, "port": port, "base_url": url, "model": "m", "model_path": "x", "log": "l"}))
        assert not is_healthy(url, timeout=0.5) and read_state(tmp_path) is None  # the probe calls it down
        assert embedded_base_url(tmp_path) == url  # ... but a run still reaches it
    finally:
        proc.kill()
        proc.wait()
        busy.close()
    with pytest.raises(TeacherConfigError, match="not running"):
        embedded_base_url(tmp_path)
    assert not path.exists()  # the dead server's record is removed
