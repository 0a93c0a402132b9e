"""What the teacher stages (perceive, graph, qa, think) share: the run's teacher client, and the
usage rows they write beside their output (table `teacher_usage`, report reports/teacher_usage.json)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from curation.schemas import TEACHER_USAGE, to_table
from curation.teacher.cache import ReplyCache
from curation.teacher.client import CONFIG_ERROR, TeacherClient, shared_client
from curation.teacher.config import EMBEDDED, TeacherConfigError, teacher_config
from curation.teacher.usage import UsageRecord, summarize_usage
from pipelines.rundir import RunDir
from pipelines.stage import StageContext

__all__ = ["CONFIG_ERROR", "TeacherConfigError", "teacher_client", "record_usage", "write_usage_report"]


def reply_cache(ctx: StageContext, configured: str | None) -> ReplyCache:
    """The recipe's `cache_dir` (a local folder, relative to the project) or the run's own
    teacher-cache/, wherever the run folder is."""
    if configured:
        path = Path(configured).expanduser()
        return ReplyCache(path if path.is_absolute() else ctx.project_root / path)
    run_dir = RunDir(ctx.run_root)
    return ReplyCache(run_dir.path("teacher-cache"), run_dir.fs)


def teacher_client(ctx: StageContext) -> TeacherClient:
    """The run's client (one per process and run: one concurrency limit, one budget).
    Raises TeacherConfigError with a message for the user when the teacher cannot be used."""
    config = teacher_config(ctx.recipe)
    base_urls = {}
    for role in ("text", "vision"):
        ep = config.endpoint(role)
        if ep is not None and ep.base_url == EMBEDDED:
            from pipelines.teacher_server import embedded_base_url

            base_urls[role] = embedded_base_url(ctx.project_root)
    return shared_client(config, reply_cache(ctx, config.cache_dir), scope=str(ctx.run_root), base_urls=base_urls)


def record_usage(ctx: StageContext, stage: str, item_ids: list[str], records: list[UsageRecord]) -> None:
    """Write the usage rows of one batch as one part (named after its items: a batch redone
    after a crash replaces its earlier rows instead of adding to them)."""
    if not records:
        return
    digest = hashlib.sha1("\n".join(sorted(map(str, item_ids))).encode()).hexdigest()[:12]
    rows = [{**r.row(), "run": ctx.run} for r in records]
    RunDir(ctx.run_root).write_part("teacher_usage", f"part-{stage}-{digest}", to_table(rows, TEACHER_USAGE))


def write_usage_report(run_dir: RunDir, params=None) -> None:
    """reports/teacher_usage.json: per stage requests, tokens, cache hits, retries, cost.
    Used as the teacher stages' finalize step (idempotent)."""
    rows = run_dir.read_rows("teacher_usage") if run_dir.has_table("teacher_usage") else []
    run_dir.write_json("reports/teacher_usage.json", summarize_usage(rows))
