"""Choose a run's chains and push them to Label Studio as tasks, without duplicates.

    chains = select_chains(run_dir, where="qa.type = 'multiple_choice'", sample=20, seed=1)
    report = push_chains(conn, run_dir, chains)

The project is one per run (title `vstw <run>`), created with labeling_config.xml on first push
and reused after. A chain already in the project (same chain_id in a task's data) is not pushed
again. A chain whose video Label Studio cannot serve is skipped with a reason; the others go on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import duckdb
import httpx
from label_studio_sdk.core.api_error import ApiError

from annotation.client import Connection, ReviewError, describe_api_error, label_config
from annotation.tasks import VideoNotServed, chain_to_task, model_version
from pipelines.rundir import RunDir

IMPORT_BATCH = 200


@dataclass
class PushReport:
    project_id: int
    project_title: str
    url: str
    created: int = 0
    already_there: int = 0
    skipped: list[dict] = field(default_factory=list)  # {chain_id, reason, error}


def project_title(run_name: str) -> str:
    return f"vstw {run_name}"


# ---- choosing chains --------------------------------------------------------------------
def select_chains(run_dir: RunDir, where: str | None = None, sample: int | None = None, seed: int = 0) -> list[dict]:
    """The run's ok chains matching a SQL predicate (DuckDB, over the chains parts), optionally a
    seeded random sample of them; sorted by chain_id."""
    parts = sorted(run_dir.table_dir("chains").glob("part-*.parquet")) if run_dir.table_dir("chains").is_dir() else []
    if not parts:
        raise ReviewError(f"run {run_dir.name} has no chains table ({run_dir.table_dir('chains')}): run the stages that make chains first")
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
    sql = f"SELECT * FROM read_parquet([{files}], union_by_name = true) WHERE status = 'ok'"
    if where:
        sql += f" AND ({where})"
    sql += " ORDER BY chain_id"
    try:
        with duckdb.connect() as con:
            rows = con.sql(sql).to_arrow_table().to_pylist()
    except duckdb.Error as err:
        raise ReviewError(f"--where {where!r} is not a valid predicate over the chains table: {err}") from None
    if sample is not None and sample < len(rows):
        rows = sorted(random.Random(seed).sample(rows, sample), key=lambda r: r["chain_id"])
    return rows


# ---- the project ------------------------------------------------------------------------
def call(conn: Connection, what: str, fn, *args, **kwargs):
    """An SDK call whose failure becomes a ReviewError saying what was being done."""
    try:
        return fn(*args, **kwargs)
    except (httpx.HTTPError, ApiError) as err:
        raise ReviewError(f"{what}: {describe_api_error(err, conn.url)}") from None


def find_project(conn: Connection, title: str) -> int | None:
    projects = call(conn, "listing projects", lambda: list(conn.client.projects.list(title=title)))
    ids = sorted(p.id for p in projects if p.title == title)
    return ids[0] if ids else None


def ensure_project(conn: Connection, title: str, version: str | None = None) -> int:
    """The project's id, creating it with the labeling config on first use."""
    project_id = find_project(conn, title)
    if project_id is None:
        project = call(
            conn,
            f"creating project {title!r}",
            conn.client.projects.create,
            title=title,
            label_config=label_config(),
            description="Streaming chains from the VST workbench: accept or reject each chain, correct thoughts and answers.",
            show_collab_predictions=True,
            **({"model_version": version} if version else {}),
        )
        project_id = project.id
    elif version:
        # Pre-labels come from the predictions of the project's model version: the latest pushed.
        call(conn, f"updating project {title!r}", conn.client.projects.update, project_id, model_version=version)
    return project_id


def ensure_storages(conn: Connection, project_id: int, folders: set[Path]) -> dict[Path, str]:
    """A local-files storage for every video folder (Label Studio only serves files under one).
    Returns folder -> error for the folders it refused."""
    existing = call(conn, "listing storages", lambda: [Path(s.path) for s in conn.client.import_storage.local.list(project=project_id)])
    errors: dict[Path, str] = {}
    for folder in sorted(folders):
        if any(folder == s or s in folder.parents for s in existing):
            continue
        try:
            conn.client.import_storage.local.create(project=project_id, path=str(folder), title=f"videos: {folder.name}", use_blob_urls=False)
            existing.append(folder)
        except ApiError as err:
            errors[folder] = describe_api_error(err, conn.url)
        except httpx.HTTPError as err:
            raise ReviewError(f"creating a storage for {folder}: {describe_api_error(err, conn.url)}") from None
    return errors


def pushed_chain_ids(conn: Connection, project_id: int) -> set[str]:
    tasks = call(conn, "listing tasks", lambda: list(conn.client.tasks.list(project=project_id, fields="all")))
    return {t.data.get("chain_id") for t in tasks if isinstance(t.data, dict) and t.data.get("chain_id")}


# ---- pushing ----------------------------------------------------------------------------
def video_fps(run_dir: RunDir) -> dict[str, float]:
    return {r["video_id"]: r["fps"] for r in run_dir.read_rows("videos", columns=["video_id", "fps"]) if r["fps"]}


def push_chains(conn: Connection, run_dir: RunDir, chains: list[dict], title: str | None = None) -> PushReport:
    """Create/reuse the run's project and import the chains not yet in it (module doc)."""
    if conn.document_root is None:
        raise ReviewError("the folder Label Studio serves videos from is unknown: pass --document-root (the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    title = title or project_title(run_dir.name)
    versions = sorted({model_version(c) for c in chains})
    project_id = ensure_project(conn, title, versions[-1] if versions else None)
    report = PushReport(project_id, title, conn.url)
    already = pushed_chain_ids(conn, project_id)
    fps = video_fps(run_dir)

    tasks: list[dict] = []
    seen: set[str] = set()
    for chain in chains:
        chain_id = chain["chain_id"]
        if chain_id in already or chain_id in seen:
            report.already_there += chain_id in already
            continue
        seen.add(chain_id)
        try:
            if chain.get("video_id") not in fps:
                raise ValueError(f"video {chain.get('video_id')} is not in the run's videos table (its fps is needed)")
            task = chain_to_task(chain, fps[chain["video_id"]], conn.document_root)
        except VideoNotServed as err:
            report.skipped.append({"chain_id": chain_id, "reason": "review_video_not_served", "error": str(err)})
            continue
        except (ValueError, KeyError, TypeError) as err:
            report.skipped.append({"chain_id": chain_id, "reason": "review_bad_chain", "error": f"{type(err).__name__}: {err}"})
            continue
        tasks.append(task)

    folders = {(conn.document_root / _relative(t)).parent for t in tasks}
    refused = ensure_storages(conn, project_id, folders)
    if refused:
        keep = []
        for task in tasks:
            folder = (conn.document_root / _relative(task)).parent
            if folder in refused:
                report.skipped.append({"chain_id": task["data"]["chain_id"], "reason": "review_video_not_served", "error": f"Label Studio refused a storage for {folder}: {refused[folder]}"})
            else:
                keep.append(task)
        tasks = keep

    for start in range(0, len(tasks), IMPORT_BATCH):
        batch = tasks[start : start + IMPORT_BATCH]
        call(conn, f"importing {len(batch)} tasks into project {project_id}", conn.client.projects.import_tasks, project_id, request=batch, return_task_ids=True)
        report.created += len(batch)
    return report


def _relative(task: dict) -> str:
    return unquote(task["data"]["video"].split("?d=", 1)[1])
