"""verify: every chain's answer re-derived independently of the step that wrote it
-> `answer_verdicts` (the schema of `verdicts`; one row per chain, check "answer").

- Template questions (the chain's `qa_template` is one of curation.questions.TEMPLATES) are
  recomputed by code from the graph of the window they are asked in (entities, relations, clip
  order), reading the question and options the model sees: another answer fails
  `answer_disagrees_graph`, a question the graph cannot answer unambiguously any more
  `answer_unverifiable`; where the captions name the entities of an order question
  (first_appearance, appeared_before, order), the order they are first named in must give the
  same answer (`answer_disagrees_captions`, param `captions`).
- Other questions (written by the teacher) are answered again by the teacher `samples` times from
  the window's time-stamped clip descriptions, without the proposed answer (prompt answer.v1).
  The k requests differ (an attempt line; multiple-choice options in a seeded order per attempt,
  the reply's letter mapped back), so neither the reply cache nor in-flight coalescing can turn
  them into one answer. Passed when at least `min_agreement` of the k answers equal the proposed
  one after normalisation; else `answer_disagrees_teacher`, or `answer_unverifiable` when no
  reply holds a readable answer. Teacher calls that fail (unavailable, budget, config) make a
  not-run row (passed null, status failed, the teacher's reason) unless the others decide.
Teacher item ids are `<chain_id>/<k>` (k = 0..samples-1).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from curation.formats.question import LETTERS, option_texts
from curation.prompts import load_prompt
from curation.teacher.client import INVALID_OUTPUT, TeacherCall, TeacherResult
from curation.teacher.structured import InvalidReply
from curation.verify import CHECK, TEMPLATES, UNVERIFIABLE, VERSION, Outcome, agreement, attempt_order, map_back, normalize_answer, proposed_answer, verify_template
from pipelines.rundir import RunDir
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.streaming import Join, PartInputs, PartRows
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report

TABLE = "answer_verdicts"


class VerifyParams(StageParams):
    stage: Literal["verify"] = "verify"
    samples: int = Field(3, ge=1, le=16, description="teacher answers per teacher-written question (k)")
    min_agreement: float = Field(0.6, gt=0, le=1, description="share of the k answers that must equal the proposed one, rounded up (0.6: 2 of 3, 3 of 5)")
    prompt: str = Field("answer.v1", description="prompt template of the re-answer (curation/prompts)")
    max_tokens: int = Field(32, ge=4, le=4096)
    seed: int = Field(0, description="seeds the per-attempt order of multiple-choice options")
    captions: bool = Field(True, description="template order questions: also compare with the order the captions first name the entities in")
    max_caption_chars: int = Field(800, ge=50)


class AnswerReply(BaseModel):
    answer: str = Field(..., min_length=1, max_length=200)


ANSWER_RULES = {
    "multiple_choice": "Answer with the letter ({letters}) of the one correct option.",
    "numerical": "Answer with a number only.",
    "yes_no": "Answer Yes or No.",
}


# ---- inputs: each chain with its window's graph entities and clip captions, nothing more -----
CHAIN_COLUMNS = ("chain_id", "question_id", "window_id", "video_id", "start_s", "end_s", "qa", "qa_template", "status")


# Parts hold whole videos: a chain's question, graph, clips and captions are among the part's own rows.
VERIFY_JOINS = (
    Join("questions", on="video_id", columns=("question_id", "details")),
    Join("graphs", on="window_id", columns=("window_id", "entities", "relations", "clip_ids", "status")),
    Join("clips", on="video_id", columns=("clip_id", "window_id", "index", "start_s", "end_s", "status")),
    Join("captions", on="video_id", columns=("clip_id", "caption", "status")),
)


def build_verify_records(rows: PartRows, params: VerifyParams) -> list[dict]:
    chains = [c for c in rows.rows("chains") if c["status"] == "ok"]
    windows = {c["window_id"] for c in chains}
    questions = {c["question_id"] for c in chains}
    details = {q["question_id"]: q["details"] for q in rows.rows("questions") if q["question_id"] in questions}
    graphs = {g["window_id"]: g for g in rows.rows("graphs") if g["status"] == "ok" and g["window_id"] in windows}
    clips: dict[str, list[dict]] = {}
    for c in rows.rows("clips"):
        if c["status"] == "ok" and c["window_id"] in windows:
            clips.setdefault(c["window_id"], []).append(c)
    wanted = {c["clip_id"] for cs in clips.values() for c in cs}
    captions = {c["clip_id"]: c["caption"] for c in rows.rows("captions") if c["status"] == "ok" and c["clip_id"] in wanted}
    records = []
    for chain in chains:
        window = sorted(clips.get(chain["window_id"], []), key=lambda c: c["index"])
        records.append({
            "chain_id": chain["chain_id"],
            "chain": chain,
            "details": details.get(chain["question_id"]),
            "entities": (graphs[chain["window_id"]]["entities"] or []) if chain["window_id"] in graphs else None,
            "relations": (graphs.get(chain["window_id"]) or {}).get("relations") or [],
            "graph_clip_ids": (graphs.get(chain["window_id"]) or {}).get("clip_ids"),
            "clips": [{"clip_id": c["clip_id"], "start_s": c["start_s"], "end_s": c["end_s"], "caption": captions.get(c["clip_id"])} for c in window],
        })  # fmt: skip
    return records


VERIFY_INPUTS = PartInputs(table="chains", key="chain_id", group="video_id", build=build_verify_records, columns=CHAIN_COLUMNS, joins=VERIFY_JOINS)


def load_verify_inputs(run_dir: RunDir, params: VerifyParams) -> list[dict]:
    """Every input record at once (tools and tests); the stage itself reads them part by part."""
    return list(VERIFY_INPUTS(run_dir, params))


# ---- rows ---------------------------------------------------------------------------------------
def verdict_row(chain_id: str, outcome: Outcome) -> dict:
    """A row of `answer_verdicts`: passed None (not run) is status failed with the reason."""
    issues = [] if outcome.passed else [{"code": outcome.reason, "message": outcome.message, "where": {}}]
    body = {"issues": issues, "message": outcome.message, **outcome.details}
    return {
        "chain_id": chain_id,
        "check": CHECK,
        "passed": outcome.passed,
        "score": outcome.score,
        "details": json.dumps(body, ensure_ascii=False, default=str),
        "checker_version": VERSION,
        "status": "failed" if outcome.passed is None else "ok",
        "reason": outcome.reason,
        "error": f"chain {chain_id}: {outcome.message}" if outcome.passed is None else None,
    }


def verify_failed_row(record: dict, reason: str, message: str) -> dict:
    return failed(reason, message, chain_id=record.get("chain_id"), check=CHECK, checker_version=VERSION)


# ---- template questions -------------------------------------------------------------------------
def _details(record: dict) -> dict:
    try:
        parsed = json.loads(record.get("details") or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def template_outcome(record: dict, params: VerifyParams) -> Outcome:
    chain = record["chain"]
    captions = [c["caption"] or "" for c in record["clips"]] if params.captions and record["clips"] else None
    return verify_template(chain["qa_template"], chain["qa"] or {}, _details(record), record["entities"], captions,
                           record.get("relations"), record.get("graph_clip_ids") or [c["clip_id"] for c in record["clips"]] or None)  # fmt: skip


# ---- teacher-written questions -------------------------------------------------------------------
def _check_reply(reply: AnswerReply, qa_type: str, shown: list[str]) -> None:
    if normalize_answer(reply.answer, qa_type, shown) is None:
        rule = ANSWER_RULES[qa_type].format(letters=", ".join(LETTERS[: len(shown)]))
        raise InvalidReply(f"{reply.answer!r} is not an answer of this question. {rule}")


def answer_calls(record: dict, params: VerifyParams) -> tuple[list[TeacherCall], list[list[int]], list[list[str]]]:
    """The k calls of one chain, with each attempt's option order and the options as shown."""
    chain = record["chain"]
    qa = chain["qa"]
    qa_type = qa["type"]
    prompt = load_prompt(params.prompt)
    clips = "\n".join(f"- {c['start_s']:.1f}-{c['end_s']:.1f} s: {(c['caption'] or '').strip()[: params.max_caption_chars]}" for c in record["clips"])
    texts = option_texts(qa.get("options") or []) if qa_type == "multiple_choice" else []
    calls, orders, shown_all = [], [], []
    for k in range(params.samples):
        order = attempt_order(len(texts), f"{params.seed}/{chain['chain_id']}", k)
        shown = [texts[i] for i in order]
        options = "Options:\n" + "\n".join(f"{LETTERS[i]}. {t}" for i, t in enumerate(shown)) if shown else ""
        messages = prompt.messages(
            clips=clips,
            end_s=f"{chain['end_s']:.1f}",
            question=(qa.get("question") or "").strip(),
            options=options,
            type_rule=ANSWER_RULES[qa_type].format(letters=", ".join(LETTERS[: len(shown)])),
            attempt=k + 1,
            k=params.samples,
        )
        calls.append(TeacherCall("verify", f"{chain['chain_id']}/{k}", messages, AnswerReply, prompt.version, params.max_tokens,
                                 check=lambda r, s=shown: _check_reply(r, qa_type, s)))  # fmt: skip
        orders.append(order)
        shown_all.append(shown)
    return calls, orders, shown_all


def teacher_outcome(record: dict, results: list[TeacherResult], orders: list[list[int]], shown: list[list[str]], params: VerifyParams) -> Outcome:
    qa = record["chain"]["qa"]
    qa_type = qa["type"]
    answers: list[str | None] = []
    replies: list[str | None] = []
    failures: list[str] = []
    for result, order, options in zip(results, orders, shown):
        if result.ok:
            raw = result.value.answer  # type: ignore[union-attr]
            replies.append(raw)
            got = normalize_answer(raw, qa_type, options)
            answers.append(map_back(got, order) if qa_type == "multiple_choice" else got)
        elif result.reason == INVALID_OUTPUT:  # the teacher replied, but nothing usable
            replies.append(result.raw_reply)
            answers.append(None)
        else:
            failures.append(result.reason or "teacher_unavailable")
    outcome = agreement(proposed_answer(qa), answers, failures, qa_type, params.samples, params.min_agreement)  # type: ignore[arg-type]
    outcome.details |= {"replies": replies, "orders": orders if qa_type == "multiple_choice" else None,
                        "teacher": next((r.model for r in results if r.model), None), "prompt_version": params.prompt}  # fmt: skip
    return outcome


# ---- the stage function ---------------------------------------------------------------------------
def precheck(record: dict, params: VerifyParams) -> Outcome | None:
    """An outcome decided without the teacher, or None when the teacher must answer."""
    chain = record["chain"]
    qa = chain.get("qa") or {}
    if proposed_answer(qa) is None:
        return Outcome(False, UNVERIFIABLE, f"the answer {qa.get('answer')!r} does not fit the type {qa.get('type')!r}", 0.0, {"method": "none"})
    if chain.get("qa_template") in TEMPLATES:
        return template_outcome(record, params)
    if not record["clips"] or any(c["caption"] is None for c in record["clips"]):
        return Outcome(False, UNVERIFIABLE, f"the window {chain['window_id']} has a clip without description to answer from", 0.0, {"method": "teacher"})
    return None


def verify_batch(records: list[dict], params: VerifyParams, ctx: StageContext) -> list[dict]:
    rows: dict[str, dict] = {}
    asks = []
    for record in records:
        outcome = precheck(record, params)
        if outcome is None:
            asks.append(record)
        else:
            rows[record["chain_id"]] = verdict_row(record["chain_id"], outcome)
    if asks:
        try:
            client = teacher_client(ctx)
        except TeacherConfigError as err:
            for record in asks:
                rows[record["chain_id"]] = verdict_row(record["chain_id"], Outcome(None, CONFIG_ERROR, str(err)))
            return [rows[r["chain_id"]] for r in records]
        planned = [(record, *answer_calls(record, params)) for record in asks]
        results = client.complete_all([call for _, calls, _, _ in planned for call in calls])
        record_usage(ctx, "verify", [r["chain_id"] for r in asks], [r.usage for r in results])
        at = 0
        for record, calls, orders, shown in planned:
            outcome = teacher_outcome(record, results[at : at + len(calls)], orders, shown, params)
            rows[record["chain_id"]] = verdict_row(record["chain_id"], outcome)
            at += len(calls)
    return [rows[r["chain_id"]] for r in records]


STAGE = Stage(
    name="verify",
    output_table=TABLE,
    fn=verify_batch,
    params_model=VerifyParams,
    key="chain_id",
    input_table="chains",
    reads_if_present=("questions", "graphs", "clips", "captions"),
    kind="io",
    failed_row=verify_failed_row,
    load_inputs=VERIFY_INPUTS,
    finalize=write_usage_report,
)
