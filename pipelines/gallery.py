"""The chain gallery: which chains to show, everything known about each, and the page.

    select_chains(cat, request)    -> the (run, chain_id) pairs to show
    load_cards(cat, keys)          -> one dict per chain: thoughts, question, verdicts, export, reviews
    write_gallery(cat, request, out) -> the self-contained HTML page (pipelines/gallery_html.py)

Chains are chosen with DuckDB over the run's tables (the catalog's views), so `--where` is plain
SQL over the `gallery_chains` view below; keyframes come from the run's cache
(pipelines/keyframes.py), decoded once per frame.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from curation.storage import atomic_write_bytes
from curation.video.keyframes import KeyframeError, pick_keyframes
from pipelines.catalog import Catalog, first_line
from pipelines.keyframes import FrameRequest, KeyframeCache

DEFAULT_SAMPLE = 50
KEYFRAMES_PER_CLIP = 2

# What `--where` filters: one row per chain, with its export decision beside it. A condition may
# also use any catalog view in a subquery (all_verdicts, reviews, clips, ...).
GALLERY_VIEW = """
CREATE OR REPLACE TEMP VIEW gallery_chains AS
SELECT c.run, c.chain_id, c.video_id, c.window_id, c.start_s, c.end_s, c.end_s - c.start_s AS window_s,
       c.qa.type AS qa_type, c.qa_template AS template, c.evidence_span, c.qa.question AS question,
       len(c.thoughts) AS n_thoughts, c.teacher, c.status, c.reason,
       d.exported, d.excluded_by, d.judge_flags, d.subset, d.human_reviewed
FROM chains c LEFT JOIN (SELECT * FROM export_decisions WHERE status = 'ok') d ON d.run = c.run AND d.chain_id = c.chain_id
"""
GALLERY_COLUMNS = "run, chain_id, video_id, window_id, start_s, end_s, window_s, qa_type, template, evidence_span, question, n_thoughts, teacher, status, reason, exported, excluded_by, judge_flags, subset, human_reviewed"


class GalleryError(ValueError):
    """The request cannot make a page (unknown chain, bad SQL, nothing matched): the message says why."""


@dataclass
class GalleryRequest:
    sample: int | None = None  # at most this many chains (a seeded sample); None: DEFAULT_SAMPLE unless chain ids are given
    seed: int = 0
    where: str | None = None
    chain_ids: list[str] = field(default_factory=list)
    title: str | None = None
    keyframes_per_clip: int = KEYFRAMES_PER_CLIP


@dataclass
class GalleryResult:
    path: Path
    chains: int
    matched: int  # chains the request matched before sampling
    keyframes: int
    decoded: int  # keyframes decoded now (the rest came from the cache)
    problems: dict[str, str]  # video_id -> why it has no keyframes
    seconds: float


# ---- which chains ------------------------------------------------------------------------------
def select_chains(cat: Catalog, request: GalleryRequest) -> tuple[list[tuple[str, str]], int]:
    """The (run, chain_id) pairs to show, in page order, and how many matched before sampling."""
    cat.con.execute(GALLERY_VIEW)
    conditions, params = [], []
    if request.chain_ids:
        wanted = list(dict.fromkeys(request.chain_ids))
        found = {row[0] for row in cat.rows("SELECT DISTINCT chain_id FROM gallery_chains WHERE list_contains(?, chain_id)", [wanted])}
        unknown = [c for c in wanted if c not in found]
        if unknown:
            raise GalleryError(
                f"no chain {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''} in {cat.scope.label} (chain ids look like ch-0123456789abcdef; `vstw sql \"SELECT chain_id FROM chains LIMIT 5\"` lists some)"
            )
        conditions.append("list_contains(?, chain_id)")
        params.append(wanted)
    if request.where:
        conditions.append(f"({request.where})")
    where = " AND ".join(conditions) or "true"
    limit = request.sample if request.sample is not None else (None if request.chain_ids else DEFAULT_SAMPLE)
    if limit is not None and limit < 1:
        raise GalleryError(f"--sample must be at least 1 (got {limit})")
    # md5 of (id, seed): a sample that is the same on every machine and DuckDB version
    order = "md5(chain_id || ':' || CAST(? AS VARCHAR)), run"
    sql = f"SELECT run, chain_id, count(*) OVER () FROM gallery_chains WHERE {where} ORDER BY {order}" + (f" LIMIT {int(limit)}" if limit else "")
    try:
        rows = cat.rows(sql, [*params, request.seed])
    except duckdb.Error as err:
        raise GalleryError(f"the --where condition did not run: {first_line(err)}\n  columns you can use: {GALLERY_COLUMNS}") from None
    if not rows:
        raise GalleryError(f"no chain matches {'--where ' + repr(request.where) if request.where else 'the request'} in {cat.scope.label}")
    keys = [(r[0], r[1]) for r in rows]
    if request.chain_ids:  # the order the user gave
        position = {c: i for i, c in enumerate(request.chain_ids)}
        keys.sort(key=lambda k: (position.get(k[1], 0), k[0]))
    return keys, rows[0][2]


# ---- everything about them ---------------------------------------------------------------------
def _register_keys(cat: Catalog, keys: list[tuple[str, str]]) -> None:
    cat.con.register("gallery_keys", pa.table({"run": [k[0] for k in keys], "chain_id": [k[1] for k in keys]}))


def _grouped(cat: Catalog, sql: str) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for row in cat.con.sql(sql).to_arrow_table().to_pylist():
        out.setdefault((row["run"], row["chain_id"]), []).append(row)
    return out


def load_cards(cat: Catalog, keys: list[tuple[str, str]]) -> list[dict]:
    """One dict per chain (in `keys` order): the chain row, its clips and video, its verdicts
    (every kind), its export decision and its reviews."""
    _register_keys(cat, keys)
    try:
        chains = _grouped(cat, "SELECT c.* EXCLUDE (raw_reply, cache_keys) FROM chains c JOIN gallery_keys USING (run, chain_id)")
        verdicts = _grouped(
            cat,
            """SELECT v.run, v.chain_id, v.kind, v."check", v.passed, v.score, v.reason, v.error, v.status, v.details
                                   FROM all_verdicts v JOIN gallery_keys USING (run, chain_id) ORDER BY v.kind DESC, v."check" """,
        )
        decisions = _grouped(
            cat,
            """SELECT d.run, d.chain_id, d.exported, d.excluded_by, d.judge_flags, d.rl_excluded_by, d.subset, d.answer_letter,
                                            d.options AS exported_options, d.human_reviewed, d.reviewer
                                     FROM export_decisions d JOIN gallery_keys USING (run, chain_id) WHERE d.status = 'ok'""",
        )
        reviews = _grouped(
            cat,
            """SELECT r.run, r.chain_id, r.reviewer, r.decision, r.decision_reason, r.corrections, r.labels, r.comment, r.reviewed_at
                                   FROM reviews r JOIN gallery_keys USING (run, chain_id) WHERE r.status = 'ok' ORDER BY r.reviewed_at""",
        )
        clip_rows = cat.con.sql("""SELECT cl.run, cl.clip_id, cl.start_s, cl.end_s, cl.vst_frame_indices FROM clips cl
                                   WHERE (cl.run, cl.window_id) IN (SELECT DISTINCT c.run, c.window_id FROM chains c JOIN gallery_keys USING (run, chain_id))""").to_arrow_table().to_pylist()
        video_rows = cat.con.sql("""SELECT v.run, v.video_id, v.path, v.sha256, v.width, v.height, v.fps FROM videos v
                                    WHERE (v.run, v.video_id) IN (SELECT DISTINCT c.run, c.video_id FROM chains c JOIN gallery_keys USING (run, chain_id))""").to_arrow_table().to_pylist()
    finally:
        cat.con.unregister("gallery_keys")
    clips = {(r["run"], r["clip_id"]): r for r in clip_rows}
    videos = {(r["run"], r["video_id"]): r for r in video_rows}
    cards = []
    for key in keys:
        chain = chains[key][0]
        cards.append(
            {
                "run": key[0],
                "chain": chain,
                "video": videos.get((key[0], chain["video_id"])),
                "clips": {t["clip_id"]: clips.get((key[0], t["clip_id"])) for t in chain["thoughts"] or []},
                "verdicts": verdicts.get(key, []),
                "decision": (decisions.get(key) or [None])[0],
                "reviews": reviews.get(key, []),
            }
        )
    return cards


def keyframe_requests(card: dict, per_clip: int, codec_keys: list[int] | None) -> dict[str, list[FrameRequest]]:
    """clip_id -> the keyframes to show under its thought (none when the video or clip is unknown)."""
    video = card["video"]
    out = {}
    for clip_id, clip in card["clips"].items():
        if not video or not clip or not video.get("path"):
            out[clip_id] = []
            continue
        frames = pick_keyframes(clip["vst_frame_indices"], per_clip, codec_keys)
        out[clip_id] = [FrameRequest(video["video_id"], video["path"], video.get("sha256") or "", f) for f in frames]
    return out


def codec_keys_of(cache: KeyframeCache, video: dict | None, problems: dict[str, str]) -> list[int] | None:
    """A card's video's codec keyframes (None, and the problem noted, when it cannot be opened)."""
    if not video or not video.get("path"):
        return None
    try:
        return cache.codec_keys(video["path"], video.get("sha256") or "")
    except KeyframeError as err:
        problems[video["video_id"]] = str(err)
        return None


def run_root_of(cat: Catalog, run: str) -> Path:
    return cat.scope.roots[0] / run if cat.scope.all_runs else cat.scope.roots[0]


# ---- the page ---------------------------------------------------------------------------------
def write_gallery(cat: Catalog, request: GalleryRequest, out: Path | str, progress: bool = True, workers: int = 2) -> GalleryResult:
    """Select, load, fetch keyframes, render, write atomically. Raises GalleryError (nothing
    written) when the request is bad; a video that cannot be decoded only loses its keyframes."""
    from pipelines.gallery_html import gallery_html

    started = time.monotonic()
    out = Path(out)
    keys, matched = select_chains(cat, request)
    cards = load_cards(cat, keys)
    jpegs: dict[FrameRequest, bytes] = {}
    problems: dict[str, str] = {}
    decoded = 0
    by_run: dict[str, list[FrameRequest]] = {}
    caches = {run: KeyframeCache(run_root_of(cat, run)) for run in {card["run"] for card in cards}}
    codec: dict[tuple[str, str], list[int] | None] = {}  # per video, once: the chains of a window share it
    for card in cards:
        video_id = (card["video"] or {}).get("video_id")
        if request.keyframes_per_clip and (card["run"], video_id) not in codec:
            codec[(card["run"], video_id)] = codec_keys_of(caches[card["run"]], card["video"], problems)
        per_clip = 0 if video_id in problems else request.keyframes_per_clip  # a video that cannot be opened shows none
        card["keyframes"] = keyframe_requests(card, per_clip, codec.get((card["run"], video_id)))
        by_run.setdefault(card["run"], []).extend(r for rs in card["keyframes"].values() for r in rs)
    for run, requests in by_run.items():
        got = caches[run].get(requests, workers=workers, progress=progress)
        jpegs |= got.jpegs
        problems |= got.problems
        decoded += got.decoded
    title = request.title or f"Chains of {cat.scope.label}"
    subtitle = describe_request(request, len(cards), matched)
    page = gallery_html(cards, jpegs, problems, title=title, subtitle=subtitle)
    atomic_write_bytes(out, page.encode("utf-8"))
    return GalleryResult(out, len(cards), matched, len(jpegs), decoded, problems, round(time.monotonic() - started, 3))


def describe_request(request: GalleryRequest, shown: int, matched: int) -> str:
    what = []
    if request.chain_ids:
        what.append(f"{len(request.chain_ids)} chain id(s) given")
    if request.where:
        what.append(f"where {request.where}")
    sampled = f"a sample of {shown} (seed {request.seed}) of {matched} matching" if shown < matched else f"all {matched} matching"
    return f"{sampled} chains" + (f" ({'; '.join(what)})" if what else "")


def details_text(details: str | None) -> str:
    """A verdict's JSON details, indented for reading (as they are when not JSON)."""
    if not details:
        return ""
    try:
        return json.dumps(json.loads(details), indent=1, ensure_ascii=False)
    except ValueError:
        return details
