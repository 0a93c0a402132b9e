"""qa: questions asked at the end of each window, each needing evidence from >= 2 clips
(table `questions`).

Three modes:
- template (default): questions derived from the knowledge graph by code (curation/questions.py:
  counts, order of first appearance, what came right after / just before, colour, direction of
  motion, where something went, on-screen text): the ground truth is exactly what the graph
  says, whatever the teacher's writing skill. No teacher call. Param `templates` picks which,
  `max_per_window` caps them, `balance_spans` makes the cap pick round-robin across evidence
  spans.
- teacher: the teacher writes one question per type from the graph; the reply is checked
  (type, 2-5 options lettered A-E with one answer, numeric answers, Yes/No, evidence clips of
  this window, at least two of them) and fails with teacher_invalid_output otherwise.
- mixed: both, per window (the verify stage recomputes the template answers and has the teacher
  answer its own questions again).
Options are stored as "A. text" strings; answers are the letter, a number string, or Yes/No.
Every question row carries its `evidence_span` (current / recent / window, from where its
evidence clips sit in the window: curation.questions.evidence_span), teacher questions too.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from pydantic import BaseModel, Field

from curation.graph import LETTERS
from curation.questions import TEMPLATES, evidence_span, window_questions
from curation.prompts import load_prompt
from curation.teacher.client import TeacherCall
from curation.teacher.structured import InvalidReply
from pipelines.stage import Stage, StageContext, StageParams, failed
from pipelines.stages._teacher import CONFIG_ERROR, TeacherConfigError, record_usage, teacher_client, write_usage_report

QA_TYPES = ("multiple_choice", "numerical", "yes_no")


class QAParams(StageParams):
    stage: Literal["qa"] = "qa"
    mode: Literal["template", "teacher", "mixed"] = "template"
    types: list[Literal["multiple_choice", "numerical", "yes_no"]] = Field(default_factory=lambda: list(QA_TYPES))
    max_options: int = Field(4, ge=2, le=5)
    templates: list[Literal[TEMPLATES]] = Field(default_factory=lambda: list(TEMPLATES), description="template questions to ask (template/mixed modes); default all")  # type: ignore[valid-type]
    max_per_window: int | None = Field(None, ge=1, description="at most this many template questions per window (default: one per template)")
    balance_spans: bool = Field(False, description="when capping, pick round-robin across evidence spans (current, recent, window)")
    prompt: str = Field("qa.v1", description="prompt template (teacher mode)")
    max_tokens: int = Field(300, ge=16, le=8192)


class QAReply(BaseModel):
    type: Literal["multiple_choice", "numerical", "yes_no"]
    question: str = Field(..., min_length=5, max_length=300)
    options: list[str] = Field(..., max_length=5)
    answer: str = Field(..., min_length=1, max_length=20)
    evidence_clip_ids: list[str] = Field(..., max_length=10)


def question_id(window_id: str, qa: dict) -> str:
    digest = hashlib.sha1((window_id + json.dumps(qa, sort_keys=True)).encode()).hexdigest()[:16]
    return f"q-{digest}"


def _base(graph: dict) -> dict:
    return {k: graph.get(k) for k in ("window_id", "video_id", "start_s", "end_s")}


def _letter_options(options: list[str]) -> list[str]:
    """'A. text' form, whatever form the teacher used."""
    out = []
    for i, option in enumerate(options):
        text = re.sub(r"^\s*\(?[A-Ea-e][.):]\s*", "", option).strip()
        out.append(f"{LETTERS[i]}. {text}")
    return out


def check_qa(reply: QAReply, qa_type: str, clip_ids: list[str]) -> None:
    """What a schema cannot say about a usable question (raises InvalidReply)."""
    if reply.type != qa_type:
        raise InvalidReply(f"type must be {qa_type!r}, got {reply.type!r}")
    evidence = set(reply.evidence_clip_ids)
    unknown = sorted(evidence - set(clip_ids))
    if unknown:
        raise InvalidReply(f"evidence_clip_ids {unknown} are not clips of this video; use ids from: {', '.join(clip_ids)}")
    if len(evidence) < 2:
        raise InvalidReply("evidence_clip_ids must name at least two different clips")
    answer = reply.answer.strip().rstrip(".")
    if qa_type == "multiple_choice":
        if not 2 <= len(reply.options) <= 5:
            raise InvalidReply("a multiple choice question needs 2 to 5 options")
        if len({o.strip().lower() for o in _letter_options(reply.options)}) != len(reply.options):
            raise InvalidReply("options must differ")
        if answer not in LETTERS[: len(reply.options)]:
            raise InvalidReply(f"answer must be one letter among {', '.join(LETTERS[: len(reply.options)])}")
    elif qa_type == "numerical":
        if reply.options or not re.fullmatch(r"-?\d+(\.\d+)?", answer):
            raise InvalidReply("a numerical question has no options and a number as answer")
    elif reply.options or answer not in ("Yes", "No"):
        raise InvalidReply("a yes/no question has no options and answers Yes or No")


TYPE_RULES = {
    "multiple_choice": "Give 2 to 5 options (plain texts) and the answer as the letter (A, B, C...) of the one correct option.",
    "numerical": "The answer is a number (a count or a duration); no options.",
    "yes_no": "The answer is Yes or No; no options.",
}


def qa_call(graph: dict, qa_type: str, params: QAParams) -> TeacherCall:
    names = {e["entity_id"]: e["name"] for e in graph["entities"]}
    prompt = load_prompt(params.prompt)
    messages = prompt.messages(
        clips=", ".join(graph["clip_ids"]),
        entities="\n".join(f"- {e['name']} ({e['type']}): {', '.join(e['clip_ids'])}" for e in graph["entities"]),
        relations="\n".join(f"- {names.get(r['subject'], r['subject'])} {r['predicate']} {names.get(r['object'], r['object'])} ({r['clip_id']})" for r in graph["relations"]) or "(none)",
        qa_type=qa_type.replace("_", " "),
        end_s=f"{graph['end_s']:.1f}",
        type_rule=TYPE_RULES[qa_type],
    )
    clip_ids = list(graph["clip_ids"])
    return TeacherCall("qa", f"{graph['window_id']}/{qa_type}", messages, QAReply, prompt.version, params.max_tokens,
                       check=lambda reply: check_qa(reply, qa_type, clip_ids))  # fmt: skip


def question_row(graph: dict, qa: dict, template: str, details: dict | None = None, **extra) -> dict:
    return {**_base(graph), "question_id": question_id(graph["window_id"], qa), "qa": qa, "template": template,
            "details": json.dumps(details or {}, sort_keys=True), "status": "ok", **extra}  # fmt: skip


def template_rows(graph: dict, params: QAParams) -> list[dict]:
    rows = []
    questions = window_questions(graph, seed=graph["window_id"], templates=params.templates, max_options=params.max_options,
                                 types=params.types, max_per_window=params.max_per_window, balance_spans=params.balance_spans)  # fmt: skip
    for q in questions:
        qa = {"type": q.type, "question": q.question, "options": q.options, "answer": q.answer, "evidence_clip_ids": q.evidence_clip_ids}
        rows.append(question_row(graph, qa, q.template, q.details, evidence_span=q.evidence_span))
    return rows


def teacher_rows(graph: dict, results: list, types: list[str]) -> list[dict]:
    rows = []
    for qa_type, result in zip(types, results):
        extra = {"teacher": result.model, "prompt_version": result.usage.prompt_version, "cache_key": result.cache_key}
        if not result.ok:
            rows.append(failed(result.reason, result.error, **_base(graph), question_id=f"{graph['window_id']}-{qa_type}-failed", **extra, raw_reply=result.raw_reply))
            continue
        r: QAReply = result.value  # type: ignore[assignment]
        options = _letter_options(r.options) if qa_type == "multiple_choice" else []
        qa = {"type": qa_type, "question": r.question.strip(), "options": options, "answer": r.answer.strip().rstrip("."),
              "evidence_clip_ids": sorted(set(r.evidence_clip_ids))}  # fmt: skip
        rows.append(question_row(graph, qa, "teacher", **extra, evidence_span=evidence_span(qa["evidence_clip_ids"], list(graph.get("clip_ids") or []))))
    return rows


def qa_batch(graphs: list[dict], params: QAParams, ctx: StageContext) -> list[dict]:
    out: dict[str, list[dict]] = {g["window_id"]: [] for g in graphs}
    if params.mode in ("template", "mixed"):
        for g in graphs:
            out[g["window_id"]] += template_rows(g, params)
    if params.mode in ("teacher", "mixed"):
        try:
            client = teacher_client(ctx)
        except TeacherConfigError as err:
            if params.mode == "teacher":
                return [failed(CONFIG_ERROR, str(err), **_base(g), question_id=f"{g['window_id']}-none") for g in graphs]
            for g in graphs:  # mixed: the template questions stand without the teacher
                out[g["window_id"]].append(failed(CONFIG_ERROR, str(err), **_base(g), question_id=f"{g['window_id']}-teacher-none"))
            client = None
        if client is not None:
            calls = [qa_call(g, t, params) for g in graphs for t in params.types]
            results = client.complete_all(calls)
            record_usage(ctx, "qa", [g["window_id"] for g in graphs], [r.usage for r in results])
            n = len(params.types)
            for i, g in enumerate(graphs):
                # mixed: a teacher question identical to a template one has its id; the template row stays
                ids = {r["question_id"] for r in out[g["window_id"]]}
                out[g["window_id"]] += [r for r in teacher_rows(g, results[i * n : (i + 1) * n], params.types) if r["question_id"] not in ids]
    rows = []
    for g in graphs:
        got = out[g["window_id"]]
        if not got:
            got = [failed("no_question", f"{g['window_id']}: the graph supports no question over two or more clips "
                          f"({len(g['entities'])} entities in {len(g['clip_ids'])} clips)", **_base(g), question_id=f"{g['window_id']}-none")]  # fmt: skip
        rows.extend(got)
    return rows


def qa_failed_row(graph: dict, reason: str, message: str) -> dict:
    return failed(reason, message, **_base(graph), question_id=f"{graph['window_id']}-none")


STAGE = Stage(
    name="qa",
    output_table="questions",
    fn=qa_batch,
    params_model=QAParams,
    key="window_id",
    input_table="graphs",
    kind="io",
    failed_row=qa_failed_row,
    finalize=write_usage_report,
)
