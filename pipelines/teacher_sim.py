"""The simulated teacher as an OpenAI-compatible HTTP server on 127.0.0.1 (`vstw teacher simulate`).

It answers the workbench's own prompts faithfully from what each prompt gives, and injects known
mistakes at a configured rate (curation/teacher/simulator.py has the logic). Every injection is
one JSON line in the log file (kind, stage, item, text, answer, detail), appended and flushed
at once, so a gate report can find the chains it hit. A tool for users too: measure your gate
before paying for a real teacher.

In process (tests, benchmarks):
    with SimulatedTeacherServer(rate=0.1, seed=0, log_path=Path("injections.jsonl")) as teacher:
        ... recipe teacher.text.base_url = teacher.base_url ...
        teacher.injections, teacher.requests_by_stage
As a background process: start_simulator(project_root, ...) / stop_simulator(project_root);
state in data/teacher-sim/server.json. `python -m pipelines.teacher_sim --port 0 ...` runs it in
the foreground.

Besides POST /v1/chat/completions and GET /v1/models: GET /v1/simulator/stats gives the
requests per stage, injections per kind and notes (prompts it could not read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from curation.teacher.simulator import KINDS, SimulatorError, TeacherSimulator
from pipelines.teacher_server import is_healthy, pid_runs, read_recorded, stop_pid

MODEL = "simulated-teacher"
HOST = "127.0.0.1"
log = logging.getLogger("vstw.teacher_sim")


class SimulatedTeacherServer:
    """The server on its own event loop thread; a context manager (or start()/stop())."""

    def __init__(self, rate: float = 0.1, kinds: list[str] | tuple[str, ...] | None = None, seed: int = 0,
                 log_path: Path | str | None = None, port: int = 0, model: str = MODEL, wordings: str = "seen"):  # fmt: skip
        self.simulator = TeacherSimulator(rate=rate, kinds=kinds, seed=seed, wordings=wordings)
        self.log_path = Path(log_path) if log_path else None
        self.model, self._port = model, port
        self.injections: list[dict] = []  # every injection, as logged
        self.notes: list[str] = []  # prompts the simulator could not read (never in a reply)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="teacher-sim", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._log_file = None
        self.port = 0

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "SimulatedTeacherServer":
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "a", encoding="utf-8")
        self._thread.start()
        start = asyncio.start_server(self._handle, HOST, self._port, backlog=512)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is None:
            return

        async def close():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:  # open keep-alive connections
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._server = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "SimulatedTeacherServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def requests_by_stage(self) -> dict[str, int]:
        with self._lock:
            return dict(self.simulator.requests)

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests_by_stage": dict(self.simulator.requests),
                "injected_by_kind": dict(self.simulator.injected),
                "injections": len(self.injections),
                "notes": list(self.notes[-50:]),
                "rate": self.simulator.rate,
                "kinds": list(self.simulator.kinds),
                "seed": self.simulator.seed,
                "log": str(self.log_path) if self.log_path else None,
            }

    def remember_captions(self, captions: dict[str, str]) -> None:
        """Clip id -> description, for runs whose graph replies come from a cache (see simulator)."""
        with self._lock:
            self.simulator.remember_captions(captions)

    # ---- HTTP ---------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                status, payload = self._route(method, path, headers, body)
                await self._write(writer, status, payload)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError):
            return  # the client went away, sent garbage, or the server is closing
        finally:
            writer.close()

    def _route(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "vstw"}]}
        if method == "GET" and path.endswith("/simulator/stats"):
            return 200, self.stats()
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                return 200, self._chat(json.loads(body or b"{}"), headers.get("x-vstw-item"))
            except (json.JSONDecodeError, SimulatorError) as err:
                return 400, {"error": {"message": f"bad request: {err}", "type": "invalid_request_error"}}
            except Exception as err:  # a simulator bug: say so (the client retries, then fails the item)
                log.exception("%s: the simulator failed", headers.get("x-vstw-item"))
                return 500, {"error": {"message": f"simulator error: {type(err).__name__}: {err}", "type": "server_error"}}
        return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}

    def _chat(self, body: dict, item: str | None) -> dict:
        with self._lock:  # the simulator's state (captions, counters) and the log, one request at a time
            reply = self.simulator.reply(body, item)
            if reply.injection is not None:
                record = reply.injection.record()
                self.injections.append(record)
                if self._log_file is not None:
                    self._log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
                    self._log_file.flush()
            if reply.note:
                self.notes.append(reply.note)
                log.warning("%s", reply.note)
            n = sum(self.simulator.requests.values())
        prompt_tokens = sum(len(str(m.get("content"))) for m in body.get("messages") or []) // 4 + 1
        completion_tokens = len(reply.content) // 4 + 1
        return {
            "id": f"chatcmpl-sim-{n}", "object": "chat.completion", "created": int(time.time()), "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content}, "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }  # fmt: skip

    async def _write(self, writer: asyncio.StreamWriter, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}.get(status, "Error")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n"
        writer.write(head.encode() + data)
        await writer.drain()


# ---- as a background process (vstw teacher simulate) ---------------------------------------------
class SimulatorProcessError(RuntimeError):
    pass


@dataclass
class SimulatorInfo:
    pid: int
    port: int
    base_url: str
    rate: float
    kinds: list[str]
    seed: int
    log: str  # the injection log (JSON lines)
    server_log: str  # the process's own log (notes, errors)


def state_path(project_root: Path) -> Path:
    return project_root / "data" / "teacher-sim" / "server.json"


def default_log(project_root: Path) -> Path:
    """Where `vstw gate report` looks when the run has no reports/injections.jsonl."""
    return project_root / "data" / "teacher-sim" / "injections.jsonl"


def _alive(pid: int) -> bool:
    return pid_runs(pid, b"pipelines.teacher_sim")


def read_simulator_state(project_root: Path) -> SimulatorInfo | None:
    """The simulator recorded for this project, when it still runs (a stale record is removed)."""
    return read_recorded(state_path(project_root), SimulatorInfo, _alive)


def start_simulator(project_root: Path, port: int = 0, rate: float = 0.1, kinds: list[str] | None = None, seed: int = 0,
                    log_path: Path | None = None, wait_s: float = 30.0, wordings: str = "seen") -> SimulatorInfo:  # fmt: skip
    """Start the simulated teacher in the background, wait until it answers, record its state.
    Refuses when one already runs for this project (stop it first: its settings may differ)."""
    current = read_simulator_state(project_root)
    if current is not None:
        raise SimulatorProcessError(f"a simulated teacher already runs at {current.base_url} (pid {current.pid}); stop it first: vstw teacher simulate --stop")
    TeacherSimulator(rate=rate, kinds=kinds, seed=seed, wordings=wordings)  # bad settings fail here, not in the child
    folder = state_path(project_root).parent
    folder.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path).resolve() if log_path else default_log(project_root)
    ready = folder / f"ready-{os.getpid()}-{time.monotonic_ns()}.json"
    server_log = folder / "server.log"
    cmd = [sys.executable, "-m", "pipelines.teacher_sim", "--port", str(port), "--rate", str(rate), "--seed", str(seed),
           "--log", str(log_path), "--ready-file", str(ready), "--wordings", wordings] + (["--kinds", ",".join(kinds)] if kinds else [])  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    with open(server_log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = server_log.read_text(errors="replace")[-1500:]
                raise SimulatorProcessError(f"the simulated teacher exited with code {proc.returncode}; log {server_log}:\n{tail}")
            if ready.is_file():
                bound = json.loads(ready.read_text())["port"]
                info = SimulatorInfo(proc.pid, bound, f"http://{HOST}:{bound}/v1", rate, list(kinds or KINDS), seed, str(log_path), str(server_log))
                if is_healthy(info.base_url):
                    state_path(project_root).write_text(json.dumps(asdict(info), indent=2) + "\n")
                    return info
            time.sleep(0.1)
        _stop_pid(proc.pid)
        raise SimulatorProcessError(f"the simulated teacher did not answer within {wait_s:.0f} s; log {server_log}")
    finally:
        ready.unlink(missing_ok=True)


def _stop_pid(pid: int) -> None:
    stop_pid(pid, grace_s=5.0, alive=_alive, poll_s=0.05)


def stop_simulator(project_root: Path) -> SimulatorInfo | None:
    """Stop the simulator this project started (by its recorded pid); None when none was recorded."""
    path = state_path(project_root)
    if not path.is_file():
        return None
    info = SimulatorInfo(**json.loads(path.read_text()))
    _stop_pid(info.pid)
    path.unlink(missing_ok=True)
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.teacher_sim", description="the simulated teacher (foreground)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.1)
    ap.add_argument("--kinds", default="", help="comma-separated mistake kinds (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", type=Path, default=None, help="injection log (JSON lines, appended)")
    ap.add_argument("--ready-file", type=Path, default=None, help="written with the bound port once listening")
    ap.add_argument("--wordings", choices=("seen", "heldout"), default="seen", help="heldout: mistakes worded in ways no check was written against")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] or None
    server = SimulatedTeacherServer(rate=args.rate, kinds=kinds, seed=args.seed, log_path=args.log, port=args.port, wordings=args.wordings).start()
    log.info("simulated teacher at %s (rate %s, seed %s, kinds %s, log %s)", server.base_url, args.rate, args.seed, ",".join(server.simulator.kinds), args.log)
    if args.ready_file:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"port": server.port, "pid": os.getpid()}))
        tmp.replace(args.ready_file)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    log.info("stopping; %s", json.dumps(server.stats()["requests_by_stage"]))
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
