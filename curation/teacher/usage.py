"""Usage accounting: one record per teacher call, and their sum per stage.

A record fits the `teacher_usage` table (curation/schemas.py). Cost is an estimate from the
recipe's price table (per million tokens); cache hits cost nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from curation.teacher.config import Price


@dataclass
class UsageRecord:
    stage: str
    item_id: str
    model: str
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    requests: int = 0
    repaired: bool = False
    latency_s: float = 0.0
    cost_usd: float = 0.0
    prompt_version: str | None = None
    cache_key: str | None = None
    status: str = "ok"
    reason: str | None = None
    error: str | None = None

    def row(self) -> dict:
        return asdict(self)


def estimate_cost(prices: dict[str, Price], model: str, prompt_tokens: int, completion_tokens: int) -> float:
    price = prices.get(model)
    if price is None:
        return 0.0
    return round((prompt_tokens * price.prompt_usd_per_mtok + completion_tokens * price.completion_usd_per_mtok) / 1e6, 8)


def summarize_usage(rows: list[dict]) -> dict[str, dict]:
    """Per stage: calls, requests sent, cache hits, retries, repairs, failures, tokens, cost."""
    out: dict[str, dict] = {}
    for r in rows:
        s = out.setdefault(
            r["stage"],
            {"calls": 0, "requests": 0, "cache_hits": 0, "retries": 0, "repairs": 0, "failures": 0,
             "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "latency_s": 0.0, "failed_by_reason": {}},
        )  # fmt: skip
        s["calls"] += 1
        s["requests"] += r.get("requests") or 0
        s["cache_hits"] += bool(r.get("cached"))
        s["retries"] += r.get("retries") or 0
        s["repairs"] += bool(r.get("repaired"))
        s["prompt_tokens"] += r.get("prompt_tokens") or 0
        s["completion_tokens"] += r.get("completion_tokens") or 0
        s["cost_usd"] = round(s["cost_usd"] + (r.get("cost_usd") or 0.0), 8)
        s["latency_s"] = round(s["latency_s"] + (r.get("latency_s") or 0.0), 3)
        if r.get("status") == "failed":
            s["failures"] += 1
            reason = r.get("reason") or "unknown"
            s["failed_by_reason"][reason] = s["failed_by_reason"].get(reason, 0) + 1
    return out
