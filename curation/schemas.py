"""Arrow schemas of every table the workbench writes: the single source of truth for columns.

Each stage writes rows (plain dicts) that must fit its table's schema; DuckDB, the exports and
the reports read these columns by name. Add columns freely; rename nothing lightly (users have
SQL written against these names).
"""

from __future__ import annotations

import pyarrow as pa

# Columns every table carries (filled in by the runner, not by the stage functions).
COMMON = [
    pa.field("run", pa.string()),
    pa.field("status", pa.string()),  # "ok" or "failed"
    pa.field("reason", pa.string()),  # stable snake_case reason code when failed (docs/reason-codes.md)
    pa.field("error", pa.string()),  # human-readable message when failed
]

ANNOTATION = pa.struct(
    [
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("kind", pa.string()),  # caption, narration, asr, event ...
    ]
)

VIDEOS = pa.schema(
    [
        pa.field("video_id", pa.string()),
        pa.field("input_index", pa.int64()),  # position in the input listing; dedup keeps the lowest
        pa.field("path", pa.string()),
        pa.field("source_id", pa.string()),  # the id the manifest gave, if any
        pa.field("sha256", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("duration_s", pa.float64()),
        pa.field("fps", pa.float64()),
        pa.field("frame_count", pa.int64()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("codec", pa.string()),
        pa.field("variable_frame_rate", pa.bool_()),  # frame times are not i / fps (curation/video/clock.py)
        pa.field("rotation", pa.int64()),  # degrees of the source's display matrix; path is upright
        pa.field("source_path", pa.string()),  # the input file when `path` is its upright copy
        pa.field("metadata_json", pa.string()),
        pa.field("annotations", pa.list_(ANNOTATION)),
        *COMMON,
    ]
)

CLIPS = pa.schema(
    [
        pa.field("clip_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("window_id", pa.string()),
        pa.field("index", pa.int64()),  # clip index within the video
        pa.field("index_in_window", pa.int64()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("start_frame", pa.int64()),
        pa.field("end_frame", pa.int64()),  # exclusive
        pa.field("window_start_s", pa.float64()),
        pa.field("window_end_s", pa.float64()),
        pa.field("cut_score", pa.float64()),  # detector score at the cut that opens the clip
        pa.field("boundary", pa.string()),  # why the clip starts here: video_start, scene_cut, split
        # The source frame indices VST's loader takes for this clip at 2 fps (spec section 2).
        pa.field("vst_frame_indices", pa.list_(pa.int64())),
        *COMMON,
    ]
)

THOUGHT = pa.struct(
    [
        pa.field("clip_id", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("entities", pa.list_(pa.string())),
        # How the thought was written: "teacher", "composed" (by code from the graph) or
        # "rewritten" (the teacher's rewrite of the composed thought, kept because it passed).
        pa.field("source", pa.string()),
        # Why a rewrite was refused and the composed thought kept (a reason code), else null.
        pa.field("fallback", pa.string()),
    ]
)

QA = pa.struct(
    [
        pa.field("type", pa.string()),  # multiple_choice, numerical, yes_no
        pa.field("question", pa.string()),
        pa.field("options", pa.list_(pa.string())),
        pa.field("answer", pa.string()),
        pa.field("evidence_clip_ids", pa.list_(pa.string())),
    ]
)

ENTITY = pa.struct(
    [
        pa.field("entity_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("type", pa.string()),
        pa.field("attributes", pa.list_(pa.string())),
        pa.field("clip_ids", pa.list_(pa.string())),  # clips where the entity is seen
        pa.field("first_clip_id", pa.string()),
        pa.field("first_seen_s", pa.float64()),
    ]
)

RELATION = pa.struct(
    [
        pa.field("subject", pa.string()),  # entity_id
        pa.field("predicate", pa.string()),
        pa.field("object", pa.string()),  # entity_id or a literal
        pa.field("clip_id", pa.string()),
        pa.field("time_s", pa.float64()),
    ]
)

CAPTIONS = pa.schema(
    [
        pa.field("clip_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("window_id", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("caption", pa.string()),
        pa.field("entities", pa.list_(pa.string())),
        pa.field("actions", pa.list_(pa.string())),
        pa.field("on_screen_text", pa.list_(pa.string())),
        pa.field("source", pa.string()),  # teacher model name, "annotation" or "signals"
        # JSON of a curation.graph.ClipExtraction ({"entities": [...], "relations": [...]}) when the
        # caption was made with structured facts (signals): the graph stage uses them without a teacher.
        pa.field("facts", pa.string()),
        # annotation captions: the sentences of human prose (caption, narration, asr, subtitle)
        # that END in this clip: what a streaming thought may state here without telling the future.
        pa.field("told", pa.list_(pa.string())),
        pa.field("prompt_version", pa.string()),
        pa.field("cache_key", pa.string()),
        pa.field("raw_reply", pa.string()),  # kept when the teacher's reply was invalid
        *COMMON,
    ]
)

# One row per clip: what cheap, local detectors measure on a few keyframes (stage `signals`).
# A clip that a recipe threshold excludes has status "failed" and the first exclusion code as
# `reason` (all of them in `exclude_reasons`); its measurements are kept.
CLIP_SIGNALS = pa.schema(
    [
        pa.field("clip_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("window_id", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("frame_indices", pa.list_(pa.int64())),  # the keyframes measured (source frame indices)
        pa.field("brightness", pa.float64()),  # mean luma, 0-255
        pa.field("blur", pa.float64()),  # variance of the Laplacian (higher = sharper)
        pa.field("motion", pa.float64()),  # mean optical-flow magnitude (see docs/signals.md for units)
        pa.field("camera_direction", pa.string()),  # static, left, right, up, down (where the camera turns)
        pa.field("ocr_text", pa.string()),  # the on-screen text read, lines joined with " | "
        pa.field("ocr_lines", pa.list_(pa.string())),
        pa.field("ocr_confidence", pa.float64()),  # mean confidence of the lines read
        pa.field("text_area", pa.float64()),  # share of the frame covered by text boxes, 0-1
        pa.field("people", pa.int64()),  # most people seen in one keyframe (HOG)
        pa.field("faces", pa.int64()),  # most faces seen in one keyframe (Haar)
        pa.field("people_positions", pa.list_(pa.string())),  # left / centre / right, per person
        pa.field("face_positions", pa.list_(pa.string())),
        pa.field("dominant_colour", pa.string()),  # the scene's colour name
        pa.field("exclude_reasons", pa.list_(pa.string())),
        pa.field("signals_version", pa.string()),
        *COMMON,
    ]
)

GRAPHS = pa.schema(
    [
        pa.field("window_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("clip_ids", pa.list_(pa.string())),
        pa.field("entities", pa.list_(ENTITY)),
        pa.field("relations", pa.list_(RELATION)),
        pa.field("teacher", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("cache_key", pa.string()),
        pa.field("raw_reply", pa.string()),
        pa.field("cache_keys", pa.list_(pa.string())),  # one teacher reply per clip of the window
        pa.field("dropped_entities", pa.list_(pa.string())),  # teacher names not found in the clip's description
        *COMMON,
    ]
)

# Questions asked at the end of a window (qa stage); think turns each into a chain.
QUESTIONS = pa.schema(
    [
        pa.field("question_id", pa.string()),
        pa.field("window_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("qa", QA),
        pa.field("template", pa.string()),  # count_entities, first_appearance, appeared_before, ..., or "teacher"
        # How much of the stream the question needs (CogStream / TimeChat-Online labels):
        # "current" (the last clip), "recent" (the last few clips) or "window" (the window so far).
        pa.field("evidence_span", pa.string()),
        pa.field("details", pa.string()),  # JSON: what the question is about (entity names), for scoring
        pa.field("teacher", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("cache_key", pa.string()),
        pa.field("raw_reply", pa.string()),
        *COMMON,
    ]
)

CHAINS = pa.schema(
    [
        pa.field("chain_id", pa.string()),
        pa.field("window_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("video_path", pa.string()),
        pa.field("video_duration_s", pa.float64()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("thoughts", pa.list_(THOUGHT)),
        pa.field("qa", QA),
        pa.field("final_answer", pa.string()),  # the assistant's answer turn, e.g. "\\boxed{B}"
        pa.field("teacher", pa.string()),
        pa.field("prompt_versions", pa.map_(pa.string(), pa.string())),
        pa.field("cache_keys", pa.list_(pa.string())),
        pa.field("raw_reply", pa.string()),
        pa.field("question_id", pa.string()),
        pa.field("qa_template", pa.string()),
        pa.field("evidence_span", pa.string()),  # the question's (questions.evidence_span)
        *COMMON,
    ]
)

VERDICTS = pa.schema(
    [
        pa.field("chain_id", pa.string()),
        pa.field("check", pa.string()),
        pa.field("passed", pa.bool_()),
        pa.field("score", pa.float64()),
        pa.field("details", pa.string()),  # JSON
        pa.field("checker_version", pa.string()),
        *COMMON,
    ]
)

REVIEWS = pa.schema(
    [
        pa.field("chain_id", pa.string()),
        pa.field("task_id", pa.int64()),
        pa.field("annotation_id", pa.int64()),
        pa.field("reviewer", pa.string()),
        pa.field("decision", pa.string()),  # accept / reject
        pa.field("decision_reason", pa.string()),
        pa.field("corrections", pa.string()),  # JSON: corrected thoughts, question, options, answer
        pa.field("labels", pa.list_(pa.string())),  # per-thought labels, in thought order
        pa.field("lead_time_s", pa.float64()),
        pa.field("reviewed_at", pa.string()),  # ISO-8601 UTC of the annotation's last update: latest wins
        pa.field("project_id", pa.int64()),  # the Label Studio project
        pa.field("raw_result", pa.string()),  # JSON: the annotation as Label Studio gave it (nothing lost)
        pa.field("comment", pa.string()),  # the reviewer's free text
        *COMMON,
    ]
)

# One row per chain the export considered: exported or not, and why (SQL: "why is X missing?").
EXPORT_DECISIONS = pa.schema(
    [
        pa.field("chain_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("window_id", pa.string()),
        pa.field("subset", pa.string()),  # the SFT file (and HF split) the chain goes to
        pa.field("qa_type", pa.string()),
        pa.field("exported", pa.bool_()),
        pa.field("excluded_by", pa.list_(pa.string())),  # "check:reason" of each verdict that excluded it
        pa.field("teacher", pa.string()),
        pa.field("prompt_versions", pa.map_(pa.string(), pa.string())),
        pa.field("human_reviewed", pa.bool_()),
        pa.field("reviewer", pa.string()),
        pa.field("duration_s", pa.float64()),  # the video's real length
        pa.field("options", pa.list_(pa.string())),
        pa.field("sft_record", pa.string()),  # the exact JSONL line
        pa.field("rl_row", pa.string()),  # JSON of the RL Parquet row (null when the chain has no RL form)
        pa.field("rl_excluded_by", pa.list_(pa.string())),  # why an exported chain has no RL row (judge pass-rate band)
        pa.field("judge_flags", pa.list_(pa.string())),  # "check:reason" of every failed judge verdict, used to exclude or not
        pa.field("answer_letter", pa.string()),  # multiple choice: the correct option's letter as exported (after re-lettering)
        *COMMON,
    ]
)

TEACHER_USAGE = pa.schema(
    [
        pa.field("stage", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("cached", pa.bool_()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("retries", pa.int64()),
        pa.field("latency_s", pa.float64()),
        pa.field("cost_usd", pa.float64()),
        pa.field("requests", pa.int64()),  # HTTP requests sent for this call (retries and repair included)
        pa.field("repaired", pa.bool_()),  # a repair request was needed
        pa.field("prompt_version", pa.string()),
        pa.field("cache_key", pa.string()),
        *COMMON,
    ]
)

TABLES: dict[str, pa.Schema] = {
    "videos": VIDEOS,
    "clips": CLIPS,
    "captions": CAPTIONS,
    "clip_signals": CLIP_SIGNALS,
    "graphs": GRAPHS,
    "questions": QUESTIONS,
    "chains": CHAINS,
    "verdicts": VERDICTS,
    # The VST-model judge (stage `judge`) writes its verdicts apart: one stage per output table.
    "judge_verdicts": VERDICTS,
    # Answer verification (stage `verify`): one row per chain, check "answer" (curation/verify.py).
    "answer_verdicts": VERDICTS,
    "reviews": REVIEWS,
    "teacher_usage": TEACHER_USAGE,
    "export_decisions": EXPORT_DECISIONS,
}


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) to an Arrow table of exactly `schema`: missing keys become nulls, unknown keys
    are an error (a typo in a stage must not silently drop a column)."""
    names = set(schema.names)
    for row in rows:
        extra = set(row) - names
        if extra:
            raise KeyError(f"columns not in the schema: {sorted(extra)}")
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)
