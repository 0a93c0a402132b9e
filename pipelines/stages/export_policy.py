"""The export's policy: which chains leave, from the verdicts, the reviews and the recipe.

Nothing unchecked leaves. A chain is exported only with a complete set of verdicts from the three
verdict tables (rule checks `verdicts`, answer verification `answer_verdicts`, the VST-model judge
`judge_verdicts`): every required check present and not failed. Each reason a chain stays out is
one `check:reason` string in `export_decisions.excluded_by`:

    <check>:verdict_missing   a required check has no verdict (stage missing from the recipe, not run yet)
    <check>:not_run           its verdict has passed = null (the check could not run, or its stage
                              crashed on the chain: a crash row check="all" / "judge" stands for
                              every check of its table)
    <check>:<reason>          a failed verdict of a check named by `exclude_on`
    review:reject             a reviewer rejected the chain
    review_recheck:<reason>   a reviewer's correction fails the rule checks re-run on it
    review_label:<label>      a reviewer labelled a thought hallucinated / wrong / ... (and did not correct it)

The judge's verdicts exclude only when they are used: `judge_excludes: auto` uses them unless the
judge model is untrained (`tiny`: random weights); they are always recorded (`judge_flags`) and
counted in the manifest. When used, RL rows also need an own-thinking pass rate strictly inside
`rl_pass_rate_band` (VST / Video-R1: drop always-solved and never-solved items) -> `rl_excluded_by`.

Multiple-choice options are re-lettered with a seed so that the correct letter is balanced over the
export (`letter_targets`). The balance needs the global view: the export stage decides every chain
part by part first, then the letters over the whole run from three short columns, then renders.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from curation.checks import ALL_CHECKS, ChecksConfig
from curation.formats.question import LETTERS, answer_letter, option_texts
from curation.reviews import boxed_answer, label_exclusions, recheck_corrected
from pipelines.rundir import RunDir

ANSWER_CHECK = "answer"  # the verify stage's check (answer_verdicts)
# The judge's measurements (curation.model.judge.MODES) and the check name of each one's verdict.
JUDGE_CHECK_OF_MODE = {
    "teacher_forced": "judge_teacher_forced",
    "own_thinking": "judge_own_thinking",
    "blind": "judge_blind",
    "likelihood": "judge_thought_likelihood",
}
JUDGE_CHECKS = tuple(JUDGE_CHECK_OF_MODE.values())
OWN_THINKING = "judge_own_thinking"
CHECK_ALIASES = {"judge_likelihood": "judge_thought_likelihood"}
# The verdict tables the export reads, and the checks each one holds.
VERDICT_TABLES: dict[str, tuple[str, ...]] = {"verdicts": ALL_CHECKS, "answer_verdicts": (ANSWER_CHECK,), "judge_verdicts": JUDGE_CHECKS}
TABLE_OF_CHECK = {check: table for table, checks in VERDICT_TABLES.items() for check in checks}
KNOWN_CHECKS: tuple[str, ...] = tuple(TABLE_OF_CHECK)
DEFAULT_REQUIRED = (*ALL_CHECKS, ANSWER_CHECK)
# Judge models with random weights: their verdicts say nothing about the data.
UNTRAINED_JUDGE_MODELS = frozenset({"tiny"})
NOT_USED_UNTRAINED = "judge verdicts recorded, not used: untrained model"


def normalize_checks(names: list[str]) -> list[str]:
    """Check names with aliases resolved; an unknown name is an error (a typo must not pass)."""
    out = [CHECK_ALIASES.get(n, n) for n in names]
    unknown = [n for n in out if n not in TABLE_OF_CHECK]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(KNOWN_CHECKS)} (judge_likelihood = judge_thought_likelihood)")
    return out


def needed_verdict_tables(params) -> dict[str, str]:
    """verdict table -> why, for the tables an export cannot do without: those of the checks it
    requires (allow_unchecked removed). Without one, every chain would stay out (verdict_missing),
    so a recipe lacking its stage is refused. The judge's count only under judge_excludes: true:
    with auto, a run without a judge stage does not use them."""
    judge_used = params.judge_excludes is True
    if params.required_checks == "default":
        excluding = set(JUDGE_CHECKS) - {OWN_THINKING} if params.exclude_on == "any" else set(params.exclude_on)
        required = [*DEFAULT_REQUIRED, *(c for c in JUDGE_CHECKS if judge_used and c in excluding)]
    else:
        required = [c for c in params.required_checks if judge_used or c not in JUDGE_CHECKS]
    by_table: dict[str, list[str]] = {}
    for check in dict.fromkeys(required):
        if check not in params.allow_unchecked:
            by_table.setdefault(TABLE_OF_CHECK[check], []).append(check)
    return {table: f"the verdicts of the required check(s) {', '.join(checks)}; or list them in export.allow_unchecked"
            for table, checks in by_table.items()}


# ---- the policy of one run ----------------------------------------------------------------------
@dataclass(frozen=True)
class ExportPolicy:
    """What the export demands of every chain of this run: resolved once from the params, the
    run's recipe and the verdict tables it has (the stage's inputs and the manifest both use it)."""

    required: tuple[str, ...]  # checks every chain must have a verdict of (allow_unchecked removed)
    excluding: frozenset[str]  # checks whose failed verdict excludes a chain
    allowed_unchecked: frozenset[str]
    tables: dict[str, bool]  # verdict table -> the run has it
    judge_used: bool
    judge_model: str | None
    judge_note: str
    rl_band: tuple[float, float] | None  # None: no pass-rate filter on the RL rows
    recheck: ChecksConfig  # the recipe's rule checks, re-run on reviewer corrections
    review_labels: frozenset[str]

    def summary(self) -> dict:
        return {
            "required_checks": list(self.required),
            "allow_unchecked": sorted(self.allowed_unchecked),
            "exclude_on": sorted(self.excluding),
            "rl_pass_rate_band": list(self.rl_band) if self.rl_band else None,
            "review_recheck": list(self.recheck.checks),
            "exclude_review_labels": sorted(self.review_labels),
        }


def recipe_stages(run_dir: RunDir) -> dict[str, dict]:
    """The run's recipe stages by name (recipe.yaml holds each stage with its resolved params)."""
    if not run_dir.has_recipe():
        return {}
    recipe = run_dir.read_recipe().get("recipe") or {}
    return {s["stage"]: s for s in recipe.get("stages") or [] if isinstance(s, dict) and s.get("stage")}


def checks_config(check_stage: dict | None) -> ChecksConfig:
    """The recipe's check thresholds (defaults without a check stage), for re-checking corrections.
    Dedup is left out: it compares a chain with the whole corpus, which a correction does not change."""
    data = {k: v for k, v in (check_stage or {}).items() if k in ChecksConfig.model_fields}
    cfg = ChecksConfig(**data)
    return cfg.model_copy(update={"checks": [c for c in cfg.checks if c != "dedup"]})


def first_judge_details(run_dir: RunDir) -> dict | None:
    """The details (JSON) of the first ok judge verdict: they name the model the judge ran."""
    for path in run_dir.part_files("judge_verdicts"):
        table = run_dir.read_part(path).select(["status", "details"])
        for details in table.filter(pc.equal(table["status"], "ok"))["details"].to_pylist():
            try:
                return json.loads(details or "{}")
            except json.JSONDecodeError:
                continue
    return None


def is_untrained_folder(model: str | None) -> bool:
    """A model folder written by curation.model.tiny.init_tiny (random weights) has vstw_tiny.json;
    a checkpoint a trainer saved has not."""
    if not model or model in UNTRAINED_JUDGE_MODELS:
        return bool(model)
    try:
        return (Path(model) / "vstw_tiny.json").is_file()
    except OSError:
        return False


def judge_model_info(run_dir: RunDir, judge_stage: dict | None) -> tuple[str | None, bool]:
    """(the judge's model, is it untrained?): from its verdicts when the run has them (details
    `model`, and `untrained` when the judge says so), else from the recipe's judge stage."""
    recipe_model = (judge_stage or {}).get("model")
    details = first_judge_details(run_dir) if run_dir.has_table("judge_verdicts") else None
    if details is None:
        return recipe_model, is_untrained_folder(recipe_model)
    name = details.get("model") or recipe_model
    # the verdicts name the folder only: look into the recipe's folder when it is that one
    same_folder = bool(recipe_model) and name is not None and Path(recipe_model).name == name
    untrained = bool(details.get("untrained")) or name in UNTRAINED_JUDGE_MODELS or (same_folder and is_untrained_folder(recipe_model))
    return name, untrained


def judge_decision(setting: bool | str, model: str | None, untrained: bool) -> tuple[bool, str]:
    """(use the judge's verdicts to exclude?, the sentence the manifest and dataset card print)."""
    if setting is False:
        return False, "judge verdicts recorded, not used: judge_excludes is false"
    if setting is True:
        return True, f"judge verdicts used (judge_excludes: true), model {model}" + (" (untrained)" if untrained else "")
    if model is None:
        return False, "no judge verdicts: the recipe has no judge stage"
    if untrained:
        return False, f"{NOT_USED_UNTRAINED} ({model})"
    return True, f"judge verdicts used: model {model}"


def export_policy(run_dir: RunDir, params) -> ExportPolicy:
    """`params`: the export stage's ExportParams."""
    stages = recipe_stages(run_dir)
    tables = {t: run_dir.has_table(t) for t in VERDICT_TABLES}
    judge_stage = stages.get("judge")
    model, untrained = judge_model_info(run_dir, judge_stage)
    judge_used, note = judge_decision(params.judge_excludes, model, untrained)
    modes = (judge_stage or {}).get("modes") or list(JUDGE_CHECK_OF_MODE)
    judge_checks = [JUDGE_CHECK_OF_MODE[m] for m in modes if m in JUDGE_CHECK_OF_MODE]

    if params.exclude_on == "any":
        # own_thinking's pass rate is the RL band below: an always-solved chain is still good SFT data.
        excluding = {*ALL_CHECKS, ANSWER_CHECK, *(c for c in judge_checks if c != OWN_THINKING)}
    else:
        excluding = set(params.exclude_on)
    if not judge_used:
        excluding -= set(JUDGE_CHECKS)
    if params.required_checks == "default":
        required = [*DEFAULT_REQUIRED, *(c for c in judge_checks if c in excluding)]
    else:
        required = [c for c in params.required_checks if judge_used or c not in JUDGE_CHECKS]
    allowed = frozenset(params.allow_unchecked)
    band = tuple(params.rl_pass_rate_band) if judge_used and OWN_THINKING in judge_checks else None
    return ExportPolicy(
        required=tuple(c for c in dict.fromkeys(required) if c not in allowed),
        excluding=frozenset(excluding),
        allowed_unchecked=allowed,
        tables=tables,
        judge_used=judge_used,
        judge_model=model,
        judge_note=note,
        rl_band=band,
        recheck=checks_config(stages.get("check")),
        review_labels=frozenset(params.exclude_review_labels),
    )


# ---- reading the verdicts -------------------------------------------------------------------------
VERDICT_COLUMNS = ["chain_id", "check", "passed", "score", "reason"]


def verdicts_by_chain(tables: dict[str, pa.Table | None]) -> dict[str, list[dict]]:
    """chain_id -> its verdict rows of every verdict table given (None: the run has not that
    table), each tagged with its table. Column by column: building row dicts through Arrow's
    to_pylist costs twice as much."""
    out: dict[str, list[dict]] = {}
    for table_name, table in tables.items():
        if table is None:
            continue
        columns = [table[c].to_pylist() for c in VERDICT_COLUMNS]
        for chain_id, check, passed, score, reason in zip(*columns):
            out.setdefault(chain_id, []).append({"table": table_name, "check": check, "passed": passed, "score": score, "reason": reason})
    return out


def rows_where(run_dir: RunDir, table: str, key: str, wanted: set[str], columns: list[str] | None = None) -> list[dict]:
    """The ok rows of `table` whose `key` is in `wanted` (filtered in Arrow, one part at a time:
    only those rows become dicts)."""
    if not wanted or not run_dir.has_table(table):
        return []
    value_set = pa.array(sorted(wanted), pa.string())
    rows = []
    for path in run_dir.part_files(table):
        data = run_dir.read_part(path, columns)
        rows += data.filter(pc.is_in(data[key], value_set=value_set)).to_pylist()
    return [r for r in rows if r.get("status", "ok") == "ok"]


# ---- one chain --------------------------------------------------------------------------------------
def exclusions(verdicts: list[dict], policy: ExportPolicy) -> list[str]:
    """"check:reason" of everything that keeps the chain out under the policy (module doc), sorted."""
    by_check: dict[str, list[dict]] = {}
    crashed: set[str | None] = set()  # verdict tables whose stage crashed on this chain
    for v in verdicts:
        if v["check"] in TABLE_OF_CHECK:
            by_check.setdefault(v["check"], []).append(v)
        elif v["passed"] is None:
            crashed.add(v.get("table"))  # "all" (check stage), "judge" (judge stage) crash rows
    out = set()
    for check in policy.required:
        rows = by_check.get(check)
        if not rows:
            out.add(f"{check}:{'not_run' if TABLE_OF_CHECK[check] in crashed else 'verdict_missing'}")
        elif any(r["passed"] is None for r in rows):
            out.add(f"{check}:not_run")
    for v in verdicts:
        if v["passed"] is False and v["check"] in policy.excluding:
            out.add(f"{'review_recheck' if v.get('recheck') else v['check']}:{v['reason'] or 'failed'}")
    return sorted(out)


def judge_flags(verdicts: list[dict]) -> list[str]:
    """"check:reason" of every failed judge verdict, used or not (the manifest reports them)."""
    return sorted({f"{v['check']}:{v['reason'] or 'failed'}" for v in verdicts if v["check"] in JUDGE_CHECKS and v["passed"] is False})


def rl_exclusions(verdicts: list[dict], policy: ExportPolicy) -> list[str]:
    """Why the chain has no RL row although it is exported: its own-thinking pass rate is not
    strictly inside the band (or was not measured)."""
    if policy.rl_band is None:
        return []
    rows = [v for v in verdicts if v["check"] == OWN_THINKING]
    if not rows:
        crashed = any(v.get("table") == "judge_verdicts" and v["passed"] is None for v in verdicts)
        return [] if OWN_THINKING in policy.allowed_unchecked else [f"{OWN_THINKING}:{'not_run' if crashed else 'verdict_missing'}"]
    rate = rows[0]["score"]
    if rows[0]["passed"] is None or rate is None or math.isnan(rate):
        return [] if OWN_THINKING in policy.allowed_unchecked else [f"{OWN_THINKING}:not_run"]
    low, high = policy.rl_band
    if rate <= low:
        return [f"{OWN_THINKING}:pass_rate_below_band"]
    if rate >= high:
        return [f"{OWN_THINKING}:pass_rate_above_band"]
    return []


def reviewed_verdicts(chain: dict, verdicts: list[dict], policy: ExportPolicy, graph: dict | None, captions: dict[str, dict]) -> list[dict]:
    """The verdicts that judge a reviewer-corrected chain. The rule checks re-run on the corrected
    text (rows marked `recheck`) replace the ones the check stage wrote about the teacher's text;
    corrected options or answer are the reviewer's, so the verify stage's verdict on the teacher's
    answer no longer applies (a person set it; the qa rule check still runs). A question only
    reworded keeps the verify verdict on its unchanged answer."""
    rechecked = recheck_corrected(chain, policy.recheck, graph, captions)
    replaced = {r["check"] for r in rechecked}
    qa_corrected = any(f in (chain.get("review_corrected") or []) for f in ("options", "answer"))
    if qa_corrected:
        replaced.add(ANSWER_CHECK)
        rechecked.append({"check": ANSWER_CHECK, "passed": True, "score": 1.0, "reason": None, "recheck": True})
    kept = [v for v in verdicts if v["check"] not in replaced]
    return kept + [{**r, "table": TABLE_OF_CHECK.get(r["check"]), "recheck": True} for r in rechecked]


def review_exclusions(chain: dict, policy: ExportPolicy) -> list[str]:
    return label_exclusions(chain, policy.review_labels)


# ---- multiple-choice letters ------------------------------------------------------------------------
def can_reletter(chain: dict) -> bool:
    qa = chain.get("qa") or {}
    return qa.get("type") == "multiple_choice" and 2 <= len(qa.get("options") or []) <= len(LETTERS) and answer_letter(qa) is not None


def relettered(chain: dict, target: int, seed: int) -> dict:
    """A copy of `chain` whose correct option is at position `target`, the other options in a
    seeded order; the answer, the boxed final answer (hence SFT and RL) follow."""
    qa = chain["qa"]
    texts = option_texts(qa["options"])
    correct = LETTERS.index(answer_letter(qa))
    others = texts[:correct] + texts[correct + 1 :]
    random.Random(f"{seed}:{chain['chain_id']}").shuffle(others)  # str seeds are stable across runs
    letter = LETTERS[target]
    options = others[:target] + [texts[correct]] + others[target:]
    return {**chain, "qa": {**qa, "options": options, "answer": letter}, "final_answer": boxed_answer(chain.get("final_answer"), letter)}


def letter_targets(chain_ids: list[str], subsets: list[str], options: list[int], seed: int) -> list[int]:
    """The position of the correct option of each chosen multiple-choice chain (not excluded, its
    video known, re-letterable), so that each letter is the answer about equally often: chains in
    sha1(seed, chain_id) order each take the least used letter among their `options` (ties: the
    least used in the chain's subset, then A before B); with one option count this cycles A, B,
    C, A, ... and every letter is within 1 of the others. Decided over the whole export from three
    short columns (the stage's corpus-wide step), then applied per chain with `relettered`."""
    order = sorted(range(len(chain_ids)), key=lambda i: hashlib.sha1(f"{seed}:{chain_ids[i]}".encode()).hexdigest())
    overall: Counter = Counter()
    by_subset: dict[str, Counter] = {}
    targets = [0] * len(chain_ids)
    for i in order:
        subset = by_subset.setdefault(subsets[i], Counter())
        target = min(range(options[i]), key=lambda k: (overall[k], subset[k], k))
        overall[target] += 1
        subset[target] += 1
        targets[i] = target
    return targets


def letter_balance(overall: Counter, by_subset: dict[str, Counter]) -> dict:
    """Answer letters of the exported multiple-choice records: overall and per subset."""
    return {"all": dict(sorted(overall.items())), "by_subset": {s: dict(sorted(c.items())) for s, c in sorted(by_subset.items())}}


# ---- the manifest's account ---------------------------------------------------------------------------
@dataclass
class ExportTally:
    """What the manifest and the dataset card count over `export_decisions`, row by row (no row
    is kept: a million rows cost a few counters)."""

    considered: int = 0  # every row, failed ones included
    excluded: Counter = field(default_factory=Counter)  # check:reason of ok rows not exported; failed:<reason>
    judge_flags: Counter = field(default_factory=Counter)  # of the ok rows
    rl_excluded: Counter = field(default_factory=Counter)  # of the exported rows
    letters: Counter = field(default_factory=Counter)
    letters_by_subset: dict[str, Counter] = field(default_factory=dict)

    def add(self, row: dict) -> None:
        """A row with at least status, reason, exported, excluded_by, judge_flags, rl_excluded_by,
        subset and answer_letter."""
        self.considered += 1
        if row["status"] != "ok":
            self.excluded[f"failed:{row['reason']}"] += 1
            return
        self.judge_flags.update(row.get("judge_flags") or [])
        if not row["exported"]:
            self.excluded.update(row["excluded_by"] or [])
            return
        self.rl_excluded.update(row.get("rl_excluded_by") or [])
        if row.get("answer_letter"):
            self.letters[row["answer_letter"]] += 1
            self.letters_by_subset.setdefault(row["subset"], Counter())[row["answer_letter"]] += 1


def export_report(policy: ExportPolicy, tally: ExportTally, params) -> dict:
    """What manifest.json (and the dataset card) say about the policy: which verdict tables were
    read, what was required, whether the judge's verdicts were used (and what they flagged
    either way), the RL rows the pass-rate band left out, the answer-letter balance."""
    letters = letter_balance(tally.letters, tally.letters_by_subset) | {"relettered": bool(params.shuffle_options), "seed": params.seed}
    notes = [policy.judge_note]
    if letters["all"]:
        shown = ", ".join(f"{k} {v}" for k, v in letters["all"].items())
        notes.append(f"multiple-choice answer letters: {shown}" + (f" (options re-lettered, seed {params.seed})" if params.shuffle_options else " (options as written)"))
    return {
        "verdict_tables": {t: ("read" if present else "absent") for t, present in policy.tables.items()},
        "policy": policy.summary(),
        "judge": {"used": policy.judge_used, "model": policy.judge_model, "note": policy.judge_note, "flagged": dict(sorted(tally.judge_flags.items()))},
        "rl_excluded": dict(sorted(tally.rl_excluded.items())),
        "answer_letters": letters,
        "notes": notes,
    }
