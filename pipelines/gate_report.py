"""The gate, measured: what the simulated teacher injected, what the gate let through.

Inputs: a run made against the simulated teacher (`vstw teacher simulate`), its injection log
(one JSON line per injected mistake: kind, stage, item, text, answer) and, where the videos are
synthetic worlds, their ground truth (`<video>.json` beside each video).

    caught(kind)         an injection is caught when no EXPORTED chain carries its content
                         (the chain was excluded, failed, or the content was repaired away)
    false_reject_rate    clean chains (carrying no injection) that were not exported
    exported_correct     exported chains that carry no injection AND agree with the ground truth
                         (every object a thought names is on screen by the end of its clip, with
                         the right colour and direction; the answer solves the question on the
                         true clip descriptions)

A chain carries a think injection when its thought for the injected clip has the injected text;
a qa injection when its question is the injected question (and, for answer mistakes, its answer
the injected answer). Verification replies carry no chain content: their injections are counted
apart (`verify_injections`), since they can only cost false rejects.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from curation.teacher.simulator import COLOURS, SHAPES
from pipelines.rundir import RunDir

CONTENT_STAGES = ("graph", "qa", "think")
_SHAPE = "(" + "|".join(SHAPES) + ")s?"
_COLOUR = "(" + "|".join(COLOURS) + ")"
_NAMED = re.compile(rf"\b{_COLOUR}\s+{_SHAPE}\b(?:\s+(?:appears\s+and\s+)?(?:is\s+)?(?:still\s+)?(?:mov\w*|head\w*|go\w*|drift\w*)\s+(?:to\s+the\s+)?(left|right|up|down))?", re.IGNORECASE)

_GONE = re.compile(rf"\b{_COLOUR}\s+{_SHAPE}\s+(?:has\s+|is\s+)?(?:disappear\w*|vanish\w*|leaves|left\s+the|gone)", re.IGNORECASE)


@dataclass
class GateReport:
    run: str
    by_kind: dict[str, dict] = field(default_factory=dict)  # kind -> {injected, caught, missed_chains}
    verify_injections: dict[str, int] = field(default_factory=dict)
    chains: int = 0
    clean_chains: int = 0
    clean_rejected: int = 0
    clean_rejected_by: dict[str, int] = field(default_factory=dict)
    exported: int = 0
    exported_correct: int = 0
    exported_wrong: list[dict] = field(default_factory=list)  # chain_id, why
    truth_checked: int = 0
    answers_checked: int = 0  # exported chains whose answer the ground truth could decide

    @property
    def false_reject_rate(self) -> float | None:
        return self.clean_rejected / self.clean_chains if self.clean_chains else None

    @property
    def exported_correct_rate(self) -> float | None:
        return self.exported_correct / self.exported if self.exported else None

    def as_json(self) -> dict:
        return {
            "by_kind": {k: {"injected": v["injected"], "caught": v["caught"], "excluded": v["excluded"], "stopped_before_chain": v["stopped"]} for k, v in sorted(self.by_kind.items())},
            "false_reject_rate": self.false_reject_rate,
            "exported_correct_rate": self.exported_correct_rate,
            "clean_chains": self.clean_chains,
            "chains": self.chains,
            "exported": self.exported,
            "truth_checked": self.truth_checked,
            "answers_checked": self.answers_checked,
            "clean_rejected_by": dict(sorted(self.clean_rejected_by.items(), key=lambda kv: -kv[1])),
            "verify_injections": self.verify_injections,
            "exported_wrong": self.exported_wrong[:20],
        }


def read_injections(log: Path) -> list[dict]:
    if not log.is_file():
        raise FileNotFoundError(f"no injection log at {log} (start the simulated teacher with --log, or pass --log)")
    out = []
    for n, line in enumerate(log.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{log}:{n}: not a JSON line ({err})") from None
    return out


# ---- which chains carry an injection ------------------------------------------------------------
def _norm(text) -> str:
    return " ".join(str(text or "").split()).strip().lower()


def _texts(chain: dict) -> list[str]:
    return [_norm(t.get("text")) for t in chain.get("thoughts") or []]


def carriers(injection: dict, chains_by_window: dict[str, list[dict]]) -> list[str]:
    """chain ids whose content is the injected content.

    A think reply is cached by its prompt (this clip's description, what is new, the memory so
    far), so another window whose prompt is the same gets the same injected thought without a
    request: every chain whose thoughts up to that clip equal the injected item's carries it."""
    stage, _, rest = (injection.get("item") or "").partition("/")
    if stage == "think":
        window_id, _, clip_id = rest.partition("/")
        text = _norm(injection.get("text"))
        here = [c for c in chains_by_window.get(window_id, [])
                if any(t.get("clip_id") == clip_id and _norm(t.get("text")) == text for t in c.get("thoughts") or [])]  # fmt: skip
        if not here:
            return []
        k = next(i for i, t in enumerate(here[0]["thoughts"]) if t.get("clip_id") == clip_id)
        prefix = _texts(here[0])[: k + 1]
        return [c["chain_id"] for cs in chains_by_window.values() for c in cs if _texts(c)[: k + 1] == prefix]
    if stage == "qa":
        window_id, _, qa_type = rest.partition("/")
        question, answer = _norm(injection.get("text")), injection.get("answer")
        out = []
        for c in chains_by_window.get(window_id, []):
            qa = c.get("qa") or {}
            if c.get("qa_template") != "teacher" or qa.get("type") != qa_type:
                continue
            if question and _norm(qa.get("question")) != question:
                continue
            if answer is not None and _norm(qa.get("answer")) != _norm(answer):
                continue
            out.append(c["chain_id"])
        return out
    if stage == "graph":
        # A graph mistake reaches every chain of the clip's window; the simulator injects only
        # reply-format faults there, which the client repairs or fails: nothing to carry.
        return []
    return []


# ---- the ground truth of synthetic worlds -------------------------------------------------------
def load_truth(video_path: str | None) -> dict | None:
    if not video_path:
        return None
    p = Path(video_path).with_suffix(".json")
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def true_objects(truth: dict) -> list[dict]:
    return [o for s in truth.get("scenes") or [] for o in s.get("objects") or []]


def thought_truth_errors(thought: dict, window_start: float, truth: dict) -> list[str]:
    """What a thought says that the world contradicts (named objects, their colour, direction)."""
    errors = []
    objects = true_objects(truth)
    end = thought.get("end_s") or 0.0
    for m in _NAMED.finditer(thought.get("text") or ""):
        colour, shape, direction = m.group(1).lower(), m.group(2).lower(), (m.group(3) or "").lower()
        seen = [o for o in objects if o["colour"] == colour and o["shape"] == shape and o["appear_s"] < end and o["leave_s"] > window_start]
        if not seen:
            errors.append(f"names a {colour} {shape} not on screen in the window by {end:.1f}s")
        elif direction and all(o["direction"] != direction for o in seen):
            errors.append(f"says the {colour} {shape} moves {direction}; it moves {seen[-1]['direction']}")
    for m in _GONE.finditer(thought.get("text") or ""):
        colour, shape = m.group(1).lower(), m.group(2).lower()
        gone = [o for o in objects if o["colour"] == colour and o["shape"] == shape and window_start <= o["leave_s"] <= end + 1e-6]
        if not gone:
            errors.append(f"says the {colour} {shape} disappears by {end:.1f}s; it does not")
    return errors


def true_captions(truth: dict, clips: list[tuple[float, float]]) -> list[str]:
    """The clip descriptions the ground truth gives (the same overlap rule as perception)."""
    out = []
    for start, end in clips:
        texts = [e["text"] for e in truth.get("events") or []
                 if (e["start_s"] < end and e["end_s"] > start) or (e["start_s"] == e["end_s"] and start <= e["start_s"] < end)]  # fmt: skip
        out.append(" ".join(texts))
    return out


def wilson_low(caught: int, n: int, z: float = 1.96) -> float:
    """Lower end of the 95% Wilson interval of caught/n: 10/10 is not proof of 95%."""
    if n == 0:
        return float("nan")
    p = caught / n
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return (centre - spread) / (1 + z * z / n)


def answer_truth_error(chain: dict, truth: dict) -> str | None:
    from curation.teacher.simulator import solve

    qa = chain.get("qa") or {}
    clips = [(t["start_s"], t["end_s"]) for t in chain.get("thoughts") or []]
    options = [re.sub(r"^[A-E]\.\s*", "", o) for o in qa.get("options") or []]
    expected = solve(qa.get("question") or "", options, true_captions(truth, clips))
    if expected is None:
        return None  # a question the oracle cannot read: not counted either way
    chain["_answer_checked"] = True
    if _norm(expected).rstrip(".") != _norm(qa.get("answer")).rstrip("."):
        return f"answer {qa.get('answer')!r}; the ground truth gives {expected!r}"
    return None


# ---- the report --------------------------------------------------------------------------------
class GateReportError(ValueError):
    pass


def this_runs(injections: list[dict], run_dir: RunDir) -> list[dict]:
    """The injections into items of this run (a simulator's log may hold other runs' too)."""
    windows = {g["window_id"] for g in run_dir.read_rows("graphs", ["window_id"])} if run_dir.has_table("graphs") else set()
    chains = {c["chain_id"] for c in run_dir.read_rows("chains", ["chain_id"])}
    clips = {c["clip_id"] for c in run_dir.read_rows("clips", ["clip_id"])} if run_dir.has_table("clips") else set()
    out = []
    for inj in injections:
        stage, _, rest = (inj.get("item") or "").partition("/")
        first = rest.partition("/")[0]
        if (stage in ("qa", "think") and first in windows) or (stage == "verify" and first in chains) or (stage in ("graph", "perceive") and first in clips):
            out.append(inj)
    return out


def gate_report(run_dir: RunDir, injections: list[dict]) -> GateReport:
    """Raises GateReportError when the run cannot be scored (no export yet, a log of other runs)."""
    if not run_dir.has_table("chains") or not run_dir.has_table("export_decisions"):
        raise GateReportError(f"run {run_dir.name} has no export yet (chains and export_decisions are needed): run it through the export stage first")
    report = GateReport(run=run_dir.name)
    mine = this_runs(injections, run_dir)
    if injections and not mine:
        raise GateReportError(f"none of the {len(injections)} logged injections is about an item of run {run_dir.name}: wrong --log?")
    injections = mine
    chains = [c for c in run_dir.read_rows("chains", ["chain_id", "window_id", "video_id", "video_path", "start_s", "end_s", "thoughts", "qa", "qa_template", "status"]) if c["status"] == "ok"]
    by_window: dict[str, list[dict]] = defaultdict(list)
    for c in chains:
        by_window[c["window_id"]].append(c)
    decisions = {d["chain_id"]: d for d in run_dir.read_rows("export_decisions", ["chain_id", "exported", "excluded_by", "status"])}
    exported = {cid for cid, d in decisions.items() if d["status"] == "ok" and d["exported"]}

    carried: dict[str, list[dict]] = defaultdict(list)
    verify = Counter()
    for inj in injections:
        stage = (inj.get("item") or "").partition("/")[0]
        if stage not in CONTENT_STAGES:
            verify[inj["kind"]] += 1
            continue
        entry = report.by_kind.setdefault(inj["kind"], {"injected": 0, "caught": 0, "excluded": 0, "stopped": 0, "missed_chains": []})
        entry["injected"] += 1
        hit = carriers(inj, by_window)
        for cid in hit:
            carried[cid].append(inj)
        missed = [cid for cid in hit if cid in exported]
        if missed:
            entry["missed_chains"] += missed
        else:
            entry["caught"] += 1
            # excluded: it reached chains and the gate kept them out; stopped: it never reached
            # a chain (the stage's own reply validation refused it and the repair was faithful,
            # or the item failed)
            entry["excluded" if hit else "stopped"] += 1
    report.verify_injections = dict(verify)

    report.chains = len(chains)
    truths: dict[str, dict | None] = {}
    for c in chains:
        if c["chain_id"] not in carried:
            report.clean_chains += 1
            if c["chain_id"] not in exported:
                report.clean_rejected += 1
                for reason in (decisions.get(c["chain_id"]) or {}).get("excluded_by") or ["not_exported"]:
                    report.clean_rejected_by[reason] = report.clean_rejected_by.get(reason, 0) + 1
        if c["chain_id"] not in exported:
            continue
        report.exported += 1
        why = [f"carries injected {i['kind']}" for i in carried.get(c["chain_id"], [])]
        if c["video_id"] not in truths:
            truths[c["video_id"]] = load_truth(c.get("video_path"))
        truth = truths[c["video_id"]]
        if truth is not None:
            report.truth_checked += 1
            for t in c.get("thoughts") or []:
                why += thought_truth_errors(t, c["start_s"], truth)
            answer_error = answer_truth_error(c, truth)
            report.answers_checked += bool(c.pop("_answer_checked", False))
            if answer_error:
                why.append(answer_error)
        if why:
            report.exported_wrong.append({"chain_id": c["chain_id"], "why": why})
        else:
            report.exported_correct += 1
    return report


def format_report(report: GateReport) -> str:
    lines = [f"gate report, run {report.run}", "",
             f"{'mistake kind':<22}{'injected':>9}{'caught':>8}{'share':>8}{'95% low':>9}{'excluded':>10}{'stopped':>9}"]  # fmt: skip
    for kind, v in sorted(report.by_kind.items()):
        share = v["caught"] / v["injected"] if v["injected"] else float("nan")
        lines.append(f"{kind:<22}{v['injected']:>9}{v['caught']:>8}{share:>8.1%}{wilson_low(v['caught'], v['injected']):>9.1%}{v['excluded']:>10}{v['stopped']:>9}")
    total_i = sum(v["injected"] for v in report.by_kind.values())
    total_c = sum(v["caught"] for v in report.by_kind.values())
    if total_i:
        tot_e, tot_s = (sum(v[k] for v in report.by_kind.values()) for k in ("excluded", "stopped"))
        lines.append(f"{'all':<22}{total_i:>9}{total_c:>8}{total_c / total_i:>8.1%}{wilson_low(total_c, total_i):>9.1%}{tot_e:>10}{tot_s:>9}")
    lines.append("excluded: the mistake reached chains and the gate kept them out; stopped: it never reached a chain "
                 "(the stage refused the reply and its repair was faithful, or the item failed)")  # fmt: skip
    lines.append("")
    fr = report.false_reject_rate
    lines.append(f"clean chains: {report.clean_chains} of {report.chains}; wrongly rejected: {report.clean_rejected}"
                 + (f" ({fr:.1%})" if fr is not None else ""))  # fmt: skip
    for reason, n in sorted(report.clean_rejected_by.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"  {reason}: {n}")
    ec = report.exported_correct_rate
    lines.append(f"exported chains: {report.exported}; fully correct: {report.exported_correct}" + (f" ({ec:.1%})" if ec is not None else "")
                 + f"; checked against ground truth: {report.truth_checked} (answers decidable: {report.answers_checked})")  # fmt: skip
    for wrong in report.exported_wrong[:10]:
        lines.append(f"  {wrong['chain_id']}: {'; '.join(wrong['why'])}")
    if report.verify_injections:
        lines.append("injections into verification replies (no chain content; can only cost false rejects): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(report.verify_injections.items())))  # fmt: skip
    return "\n".join(lines)
