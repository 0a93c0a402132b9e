"""The teacher client: any OpenAI-compatible endpoint, with the care a long synthesis run needs.

- one event loop per client, on its own thread: stage functions (running in the runner's
  threads) hand it their calls, so ONE semaphore bounds the requests in flight for the process;
- retries with exponential back-off and jitter on 429 (honouring Retry-After), 5xx, timeouts
  and dropped connections (tenacity); other HTTP errors are not retried;
- a per-run budget of requests and tokens: calls beyond it fail with teacher_budget_exhausted
  and can be redone later (their replies were never cached);
- structured output parsed and validated with pydantic; on an invalid reply ONE repair request
  that shows the error, then the call fails with teacher_invalid_output (raw reply kept);
- a content-addressed cache of accepted replies (cache.py); identical calls in flight at the
  same time are sent once.
Stage code never sees HTTP: it gets a TeacherResult (ok + value, or a reason code + message).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

import openai
from pydantic import BaseModel
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from curation.teacher.cache import ReplyCache, cache_key
from curation.teacher.config import EndpointConfig, TeacherConfig, TeacherConfigError
from curation.teacher.structured import InvalidReply, parse_reply, response_format, schema_instruction
from curation.teacher.usage import UsageRecord, estimate_cost

# Reason codes (docs/reason-codes.md)
BUDGET_EXHAUSTED = "teacher_budget_exhausted"
INVALID_OUTPUT = "teacher_invalid_output"
UNAVAILABLE = "teacher_unavailable"
REQUEST_REJECTED = "teacher_request_rejected"
CONFIG_ERROR = "teacher_config_error"

RAW_REPLY_MAX_CHARS = 8000
REPAIR_INSTRUCTION = (
    "Your reply above cannot be used: {error}.\n"
    "Reply again with the corrected JSON object only."
)  # the repair prompt's version is part of every cache key (REPAIR_VERSION)
REPAIR_VERSION = "repair.v1"


class BudgetExhausted(RuntimeError):
    pass


@dataclass(frozen=True)
class TeacherCall:
    """One structured question to the teacher."""

    stage: str
    item_id: str
    messages: list[dict]
    output: type[BaseModel]
    prompt_version: str
    max_tokens: int
    role: Literal["text", "vision"] = "text"
    # Extra checks on the parsed reply (raise InvalidReply): what a schema cannot say.
    check: Callable[[BaseModel], None] | None = None


@dataclass
class TeacherResult:
    ok: bool
    value: BaseModel | None
    cache_key: str
    model: str
    usage: UsageRecord
    reason: str | None = None
    error: str | None = None
    raw_reply: str | None = None


@dataclass
class _Exchange:
    """What one call cost on the wire (kept even when it ends in an error)."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class _Reply:
    content: str | None
    finish_reason: str | None


ITEM_HEADER = "X-Vstw-Item"


def item_header(call: TeacherCall) -> dict:
    """Names the item a request is for ("think/<window>/<clip>"): the simulated teacher logs its
    injected mistakes under it, so a gate report can find the chains they hit. Never part of the
    cache key (the messages are)."""
    return {ITEM_HEADER: f"{call.stage}/{call.item_id}"}


def is_loopback(base_url: str) -> bool:
    """Item ids name videos: they go only to servers on this machine (the simulated teacher,
    a local llama.cpp), never to a remote API."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def retry_after_seconds(exc: BaseException) -> float | None:
    """Retry-After of an HTTP error reply (seconds or an HTTP date), if any."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


class _LoopThread:
    """An asyncio loop running forever on a daemon thread; any thread may submit to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="teacher-loop", daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class TeacherClient:
    def __init__(self, config: TeacherConfig, cache: ReplyCache | Path | str, base_urls: dict[str, str] | None = None):
        self.config = config
        self.cache = cache if isinstance(cache, ReplyCache) else ReplyCache(cache)
        self.base_urls = base_urls or {}
        self._loop = _LoopThread()
        self._semaphore: asyncio.Semaphore | None = None
        self._openai: dict[str, openai.AsyncOpenAI] = {}
        self._inflight: dict[str, asyncio.Future] = {}
        self._budget_lock = threading.Lock()
        self.requests_sent = 0
        self.tokens_used = 0

    # ---- from any thread ----------------------------------------------------------------
    def run(self, coro):
        """Run a coroutine (built from this client's async methods) on the client's loop."""
        return self._loop.run(coro)

    def complete_all(self, calls: list[TeacherCall]) -> list[TeacherResult]:
        async def gather():
            return await asyncio.gather(*(self.complete(c) for c in calls))

        return self.run(gather())

    # ---- endpoints ----------------------------------------------------------------------
    def endpoint(self, role: str) -> EndpointConfig:
        ep = self.config.endpoint(role)  # type: ignore[arg-type]
        if ep is None:
            raise TeacherConfigError(f"no '{role}' endpoint in the recipe's teacher section")
        return ep

    def base_url(self, role: str) -> str:
        return self.base_urls.get(role, self.endpoint(role).base_url)

    def _headers(self, call: TeacherCall) -> dict | None:
        return item_header(call) if is_loopback(self.base_url(call.role)) else None

    def _client(self, role: str) -> openai.AsyncOpenAI:
        if role not in self._openai:
            ep = self.endpoint(role)
            key = "unused-local-server"  # a local server needs none; this dummy is never written
            if ep.api_key_env:
                key = os.environ.get(ep.api_key_env, "")
                if not key:
                    raise TeacherConfigError(f"the environment variable {ep.api_key_env} (teacher.{role}.api_key_env) is not set")
            base_url = self.base_url(role)
            # Retries are ours (tenacity, with Retry-After and accounting): the SDK's are off.
            self._openai[role] = openai.AsyncOpenAI(base_url=base_url, api_key=key, timeout=self.config.timeout_s, max_retries=0)
        return self._openai[role]

    def request_params(self, call: TeacherCall) -> tuple[list[dict], dict]:
        """The messages and parameters actually sent (and hashed into the cache key)."""
        ep = self.endpoint(call.role)
        messages = call.messages
        params: dict[str, Any] = {"temperature": self.config.temperature, "max_tokens": call.max_tokens}
        if self.config.seed is not None:
            params["seed"] = self.config.seed
        fmt = response_format(ep.structured_output, call.output, ep.strict)
        if fmt is not None:
            params["response_format"] = fmt
        if ep.structured_output == "text":
            last = messages[-1]
            messages = [*messages[:-1], {**last, "content": _append_text(last["content"], schema_instruction(call.output))}]
        return messages, params

    # ---- one call -------------------------------------------------------------------------
    async def complete(self, call: TeacherCall) -> TeacherResult:
        started = time.monotonic()
        try:
            ep = self.endpoint(call.role)
            messages, params = self.request_params(call)
        except TeacherConfigError as err:
            return _failed(call, "", "", CONFIG_ERROR, str(err), UsageRecord(call.stage, call.item_id, "", False))
        key = cache_key(ep.model, messages, params, f"{call.prompt_version}+{REPAIR_VERSION}")

        hit = self._from_cache(call, key, ep.model)
        if hit is not None:
            return hit
        if key in self._inflight:  # the same request is on the wire already: share its reply
            result = await asyncio.shield(self._inflight[key])
            usage = UsageRecord(call.stage, call.item_id, ep.model, True, prompt_version=call.prompt_version, cache_key=key,
                                status="ok" if result.ok else "failed", reason=result.reason, error=result.error)  # fmt: skip
            return replace(result, usage=usage)
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._fresh(call, ep, messages, params, key, started)
            future.set_result(result)
            return result
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            self._inflight.pop(key, None)

    def _from_cache(self, call: TeacherCall, key: str, model: str) -> TeacherResult | None:
        entry = self.cache.get(key)
        if entry is None:
            return None
        try:
            value = parse_reply(entry.get("content"), entry.get("finish_reason"), call.output, call.check)
        except InvalidReply:
            return None  # stored under older rules that no longer accept it: ask again
        usage = UsageRecord(call.stage, call.item_id, model, True, prompt_version=call.prompt_version, cache_key=key)
        return TeacherResult(True, value, key, model, usage)

    async def _fresh(self, call, ep, messages, params, key, started) -> TeacherResult:
        ex = _Exchange()
        usage = UsageRecord(call.stage, call.item_id, ep.model, False, prompt_version=call.prompt_version, cache_key=key)

        def account(result: TeacherResult) -> TeacherResult:
            usage.prompt_tokens, usage.completion_tokens = ex.prompt_tokens, ex.completion_tokens
            usage.retries, usage.requests = ex.retries, ex.requests
            usage.latency_s = round(time.monotonic() - started, 4)
            usage.cost_usd = estimate_cost(self.config.prices, ep.model, ex.prompt_tokens, ex.completion_tokens)
            usage.status, usage.reason, usage.error = ("ok", None, None) if result.ok else ("failed", result.reason, result.error)
            return result

        try:
            reply = await self._send(call.role, ep, messages, params, ex, self._headers(call))
            try:
                value = parse_reply(reply.content, reply.finish_reason, call.output, call.check)
                accepted = reply
            except InvalidReply as first_error:
                usage.repaired = True
                repair = [*messages, {"role": "assistant", "content": reply.content or ""},
                          {"role": "user", "content": REPAIR_INSTRUCTION.format(error=first_error)}]  # fmt: skip
                second = await self._send(call.role, ep, repair, params, ex, self._headers(call))
                try:
                    value = parse_reply(second.content, second.finish_reason, call.output, call.check)
                    accepted = second
                except InvalidReply as second_error:
                    raw = _raw(reply.content) + "\n--- repair reply ---\n" + _raw(second.content)
                    message = f"{call.item_id}: invalid teacher reply after one repair: {second_error} (first: {first_error})"
                    return account(_failed(call, key, ep.model, INVALID_OUTPUT, message, usage, raw))
        except BudgetExhausted as err:
            return account(_failed(call, key, ep.model, BUDGET_EXHAUSTED, f"{call.item_id}: {err}", usage))
        except TeacherConfigError as err:
            return account(_failed(call, key, ep.model, CONFIG_ERROR, str(err), usage))
        except openai.APIError as err:
            reason = UNAVAILABLE if is_transient(err) else REQUEST_REJECTED
            detail = f"{type(err).__name__}: {str(err)[:300]}"
            if reason == UNAVAILABLE:
                detail = f"gave up after {ex.requests} attempt(s); last error {detail}"
            return account(_failed(call, key, ep.model, reason, f"{call.item_id}: {detail}", usage))
        self.cache.put(key, {"content": accepted.content, "finish_reason": accepted.finish_reason, "model": ep.model,
                             "prompt_version": call.prompt_version, "repaired": usage.repaired})  # fmt: skip
        return account(TeacherResult(True, value, key, ep.model, usage))

    # ---- the wire ------------------------------------------------------------------------
    def _charge_request(self) -> None:
        budget = self.config.budget
        with self._budget_lock:
            if budget.max_requests is not None and self.requests_sent >= budget.max_requests:
                raise BudgetExhausted(f"the run's teacher budget of {budget.max_requests} requests is used up")
            if budget.max_tokens is not None and self.tokens_used >= budget.max_tokens:
                raise BudgetExhausted(f"the run's teacher budget of {budget.max_tokens} tokens is used up")
            self.requests_sent += 1

    def _charge_tokens(self, response, ex: _Exchange) -> None:
        usage = getattr(response, "usage", None)
        p, c = (usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0)
        ex.prompt_tokens += p
        ex.completion_tokens += c
        with self._budget_lock:
            self.tokens_used += p + c

    def _wait(self, state) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = retry_after_seconds(exc) if exc is not None else None
        if after is not None:
            return min(after, self.config.max_retry_after_s)
        backoff = wait_exponential_jitter(multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s, jitter=self.config.backoff_initial_s)
        return backoff(state)

    async def _send(self, role: str, ep: EndpointConfig, messages: list[dict], params: dict, ex: _Exchange, headers: dict | None = None) -> _Reply:
        client = self._client(role)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.concurrency)
        first = True
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            reraise=True,
        ):
            with attempt:
                if not first:
                    ex.retries += 1
                first = False
                async with self._semaphore:
                    # Charged once a slot is free, so that tokens of the replies before it count.
                    self._charge_request()
                    ex.requests += 1
                    response = await client.chat.completions.create(model=ep.model, messages=messages, extra_headers=headers, **params)
                    self._charge_tokens(response, ex)
        if not response.choices:
            return _Reply(None, None)
        choice = response.choices[0]
        return _Reply(choice.message.content, choice.finish_reason)


def _append_text(content: Any, text: str) -> Any:
    if isinstance(content, str):
        return content + "\n\n" + text
    return [*content, {"type": "text", "text": text}]


def _raw(content: str | None) -> str:
    content = content or ""
    return content if len(content) <= RAW_REPLY_MAX_CHARS else content[:RAW_REPLY_MAX_CHARS] + "...[cut]"


def _failed(call: TeacherCall, key: str, model: str, reason: str, error: str, usage: UsageRecord, raw: str | None = None) -> TeacherResult:
    return TeacherResult(False, None, key, model, usage, reason=reason, error=error, raw_reply=raw)


# ---- one client per run and configuration, shared by the runner's threads -----------------
_CLIENTS: dict[tuple, TeacherClient] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(config: TeacherConfig, cache: ReplyCache, scope: str, base_urls: dict[str, str] | None = None) -> TeacherClient:
    """The process's client for this (scope, configuration): one semaphore and one budget per
    run (scope = the run folder), whichever thread asks."""
    key = (scope, config.fingerprint(), cache.location, tuple(sorted((base_urls or {}).items())))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = TeacherClient(config, cache, base_urls)
        return _CLIENTS[key]
