"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1 (real HTTP/1.1, keep-alive).

Faults are asked for inside the prompt, so each test item says what should happen to it:
    [[fault:429:2]]      the first 2 requests of this item get 429 with Retry-After
    [[fault:500:1]]      the first request gets 500 ([[fault:400:1]]: 400, not worth a retry)
    [[fault:slow:9]]     the first 9 requests are answered after `slow_s` (past the client timeout)
    [[fault:drop:1]]     the first request's connection is closed without an answer
    [[fault:badjson:1]]  the first reply is not JSON (99: never JSON)
    [[fault:length:1]]   the first reply is cut off (finish_reason "length")
Several markers apply one after the other. An item is identified by its first user message, so a repair request (same first message,
more turns) counts as the same item. The server counts everything it sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable

# The stages that ask the teacher only when told to: graph reads the annotations' facts and think
# composes by default, so a test of the teacher stages names the teacher modes.
TEACHER_MODES = {"graph": {"source": "teacher"}, "think": {"mode": "teacher"}}

FAULT = re.compile(r"\[\[fault:(\w+):(\d+)\]\]")
COLOUR_SHAPE = re.compile(r"\b(red|green|blue|yellow|white|magenta)\s+(circle|square|triangle)\b")


def fault_for(prompt: str, nth: int) -> str | None:
    """The fault of the nth request of an item: markers apply one after the other
    ("[[fault:429:1]] [[fault:drop:1]]": a 429, then a dropped connection, then answers)."""
    offset = 0
    for kind, n in FAULT.findall(prompt):
        if nth <= offset + int(n):
            return kind
        offset += int(n)
    return None


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))


def default_reply(body: dict) -> str:
    """A valid reply for the workbench's schemas, built from the prompt (deterministic)."""
    messages = body["messages"]
    first_user = next(_text(m["content"]) for m in messages if m["role"] == "user")
    schema = (body.get("response_format") or {}).get("schema") or ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
    props = schema.get("properties", {})
    if "thought" in props:
        new = re.search(r"New in this clip: (.*)", first_user)
        names = new.group(1).strip() if new else "nothing new"
        return json.dumps({"thought": f"Now I see {names}." if names != "nothing new" else "Nothing new happens."})
    if "relations" in props:
        desc = re.search(r'Description: "(.*)"', first_user)
        found = sorted({" ".join(m) for m in COLOUR_SHAPE.findall(desc.group(1) if desc else first_user)})
        found = found[: props["entities"].get("maxItems", len(found))]  # as a constrained server would
        entities = [{"name": n, "type": "object", "attributes": [n.split()[0]]} for n in found]
        relations = [{"subject": found[0], "predicate": "near", "object": found[1]}] if len(found) > 1 else []
        return json.dumps({"entities": entities, "relations": relations})
    if "caption" in props:
        n_images = sum(1 for m in messages if not isinstance(m["content"], str) for p in m["content"] if p.get("type") == "image_url")
        return json.dumps({"caption": f"A red circle is seen in {n_images} frames.", "entities": ["red circle"], "actions": ["moves"], "on_screen_text": []})
    if "evidence_clip_ids" in props:
        clips = re.search(r"Clips of the video, in order: (.*)", first_user).group(1).split(", ")
        qtype = "multiple_choice" if "multiple choice question" in first_user else "numerical" if "numerical question" in first_user else "yes_no"
        options, answer = ({"multiple_choice": (["red circle", "blue square"], "A"), "numerical": ([], "2"), "yes_no": ([], "Yes")})[qtype]
        return json.dumps({"type": qtype, "question": "Which thing came first in the video?", "options": options, "answer": answer, "evidence_clip_ids": clips[:2]})
    answer = re.sub(r"\[\[fault:\w+:\d+\]\]", "", first_user).strip()[:40] or "ok"
    return json.dumps({"answer": answer})


class FakeTeacherServer:
    def __init__(self, latency_s: float = 0.0, slow_s: float = 3.0, retry_after: str = "1",
                 reply: Callable[[dict], str] = default_reply, model: str = "fake-teacher"):  # fmt: skip
        self.latency_s, self.slow_s, self.retry_after, self.reply, self.model = latency_s, slow_s, retry_after, reply, model
        self.requests = 0  # chat requests received (every attempt, including retries and repairs)
        self.by_item: Counter[str] = Counter()  # item (first user message) -> requests
        self.outcomes: Counter[str] = Counter()  # 200, 429, 500, drop, slow, badjson, length
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []  # every chat request body, in arrival order
        self.authorizations: set[str] = set()  # seen, to check a key was sent; never written anywhere
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = None
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------------
    def __enter__(self):
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc):
        async def close():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:  # open keep-alive connections and slow replies
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset_counts(self) -> None:
        with self._lock:
            self.requests, self.max_in_flight = 0, 0
            self.by_item.clear()
            self.bodies.clear()
            self.outcomes.clear()

    # ---- HTTP ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, v = h.decode().split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if "authorization" in headers:
                    self.authorizations.add(headers["authorization"])
                if method == "GET":
                    await self._write(writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
                    continue
                if not await self._chat(writer, json.loads(body)):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went away, or the server is closing
        finally:
            writer.close()

    async def _write(self, writer, status: int, payload: dict, extra: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Error")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: keep-alive\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
        writer.write(head.encode() + b"\r\n" + data)
        await writer.drain()

    async def _chat(self, writer, body: dict) -> bool:
        """Answer one chat request; False when the connection was dropped on purpose."""
        first_user = next(_text(m["content"]) for m in body["messages"] if m["role"] == "user")
        item = hashlib.sha1(first_user.encode()).hexdigest()
        with self._lock:
            self.requests += 1
            self.bodies.append(body)
            self.by_item[item] += 1
            nth = self.by_item[item]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            kind = fault_for(first_user, nth)
            self.outcomes[kind or "200"] += 1
            if kind == "429":
                await self._write(writer, 429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": self.retry_after})
            elif kind == "400":
                await self._write(writer, 400, {"error": {"message": "bad request", "type": "invalid_request_error"}})
            elif kind == "500":
                await self._write(writer, 500, {"error": {"message": "boom", "type": "server_error"}})
            elif kind == "drop":
                writer.transport.abort()
                return False
            else:
                if kind == "slow":
                    await asyncio.sleep(self.slow_s)
                content, finish = self.reply(body), "stop"
                if kind == "badjson":
                    content = "Sure! Here is the answer: {not json"
                elif kind == "length":
                    content, finish = content[: len(content) // 2], "length"
                prompt_tokens = sum(len(_text(m["content"])) for m in body["messages"]) // 4
                await self._write(writer, 200, {
                    "id": f"chatcmpl-{self.requests}", "object": "chat.completion", "created": int(time.time()), "model": self.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4 + 1, "total_tokens": prompt_tokens + len(content) // 4 + 1},
                })  # fmt: skip
            return True
        finally:
            with self._lock:
                self.in_flight -= 1


def synthetic_manifest(samples_dir: Path, folder: Path, count: int = 2) -> Path:
    """A manifest of the first `count` synthetic samples (their ground truth as annotations),
    with absolute paths, written into `folder`: a short teacher pipeline for tests."""
    lines = (samples_dir / "manifest.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if '"synthetic' in line][:count]
    for row in rows:
        row["path"], row["annotations_file"] = str(samples_dir / row["path"]), str(samples_dir / row["annotations_file"])
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest
