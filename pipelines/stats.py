"""The standard corpus report, computed with SQL over the catalog (pipelines/catalog.py).

`standard_report(catalog)` returns the report as a list of `Section`s (a title, columns, rows):
the terminal (`vstw stats`), the HTML report (pipelines/report.py), the notebook and `--json` all
render the same sections. Every number comes from SQL over the views (the query text is kept in
`Section.sql`). Thought statistics come from one scan of `chains.thoughts` into a small in-memory
table of numbers (`_chain_facts`): that column is most of a corpus's bytes, so it is read once.

`plot_data(catalog)` returns the binned series the plots need (histograms are binned in SQL: a
corpus of millions of rows never comes into Python).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.catalog import Catalog, quote

QUANTILES = [0.1, 0.5, 0.9]


@dataclass
class Section:
    key: str
    title: str
    columns: list[str]
    rows: list[list]
    note: str | None = None
    sql: list[str] = field(default_factory=list)

    def as_dicts(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def lookup(self, **match) -> dict | None:
        """The first row whose columns equal `match` (tests and notebooks read numbers this way)."""
        for row in self.as_dicts():
            if all(row.get(k) == v for k, v in match.items()):
                return row
        return None


@dataclass
class Report:
    scope: str
    sections: list[Section]

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(f"no section {key!r} in the report; sections: {[s.key for s in self.sections]}")

    def to_json(self) -> dict:
        return {"scope": self.scope, "sections": [{"key": s.key, "title": s.title, "note": s.note, "rows": s.as_dicts()} for s in self.sections]}


def _query(cat: Catalog, sql: str) -> tuple[list[str], list[list]]:
    cur = cat.con.execute(sql)
    columns = [d[0] for d in cur.description]
    return columns, [list(r) for r in cur.fetchall()]


def _section(cat: Catalog, key: str, title: str, sql: str, note: str | None = None) -> Section:
    columns, rows = _query(cat, sql)
    return Section(key, title, columns, rows, note, [sql.strip()])


# ---- the one scan of the thoughts ------------------------------------------------------------
# Reading `chains.thoughts` is the one expensive read of a corpus (DuckDB reads every field of a
# list of structs, text included, whatever the query needs). The report reads it ONCE, into a small
# in-memory table of numbers per ok chain, and every thought statistic comes from there.
CHAIN_FACTS_SQL = """
    CREATE OR REPLACE TEMP TABLE _chain_facts AS
    SELECT qa.type AS qa_type, start_s, end_s, coalesce(len(thoughts), 0) AS n_thoughts,
           list_transform(thoughts, lambda t: length(t.text)::INTEGER) AS thought_chars,
           list_transform(thoughts, lambda t: (t.start_s - start_s)::FLOAT) AS thought_offsets
    FROM chains WHERE status = 'ok'"""
THOUGHT_FACTS_SQL = """
    CREATE OR REPLACE TEMP VIEW _thought_facts AS
    SELECT qa_type, unnest(thought_chars) AS n_chars, unnest(thought_offsets) AS offset_s FROM _chain_facts"""


def build_facts(cat: Catalog) -> None:
    cat.con.execute(CHAIN_FACTS_SQL)
    cat.con.execute(THOUGHT_FACTS_SQL)


def ensure_facts(cat: Catalog) -> None:
    if not cat.one("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_chain_facts' AND temporary")[0]:
        build_facts(cat)


def quantile_from_counts(counts: list[tuple[float, int]], q: float) -> float | None:
    """DuckDB's quantile_cont (linear interpolation at position q * (n - 1)) over (value, count)."""
    counts = sorted((v, n) for v, n in counts if v is not None and n)
    total = sum(n for _, n in counts)
    if not total:
        return None
    pos = q * (total - 1)
    lo_rank, frac = int(math.floor(pos)), pos - math.floor(pos)
    seen, lo_value, hi_value = 0, None, None
    for value, n in counts:
        if lo_value is None and lo_rank < seen + n:
            lo_value = value
        if lo_rank + 1 < seen + n:
            hi_value = value
            break
        seen += n
    hi_value = lo_value if hi_value is None else hi_value
    return float(lo_value) + frac * (float(hi_value) - float(lo_value))


def thought_length_counts(cat: Catalog) -> list[tuple[int, int]]:
    """(characters, thoughts) over ok chains: the exact length distribution, a few hundred rows."""
    ensure_facts(cat)
    return [(int(v), int(n)) for v, n in cat.rows("SELECT n_chars, count(*) FROM _thought_facts WHERE n_chars IS NOT NULL GROUP BY ALL ORDER BY 1")]


# ---- sections -----------------------------------------------------------------------------
def tables_section(cat: Catalog) -> Section:
    """Which tables the run has, and their rows ok / failed."""
    parts = []
    for name, info in cat.tables.items():
        parts.append(
            f"SELECT {len(parts)} AS k, '{name}' AS \"table\", {info.parts} AS parts, count(*) AS rows, "
            f"count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status = 'failed') AS failed FROM {quote(name)}"
        )
    sql = "SELECT \"table\", parts, rows, ok, failed FROM (" + " UNION ALL ".join(parts) + ") ORDER BY k"
    missing = [name for name, info in cat.tables.items() if not info.parts]
    note = f"not produced yet: {', '.join(missing)}" if missing else None
    return _section(cat, "tables", "Tables", sql, note)


def videos_section(cat: Catalog) -> Section:
    sql = """
        SELECT 'all' AS status, '' AS reason, count(*) AS videos, round(coalesce(sum(duration_s), 0) / 3600, 4) AS hours FROM videos
        UNION ALL
        SELECT * FROM (
            SELECT coalesce(status, 'unknown'), coalesce(reason, ''), count(*), round(coalesce(sum(duration_s), 0) / 3600, 4)
            FROM videos GROUP BY ALL ORDER BY 1 DESC, 3 DESC, 2)"""
    return _section(cat, "videos", "Videos and hours in / failed (by reason)", sql)


def corpus_section(cat: Catalog) -> Section:
    """The headline counts, one metric per row."""
    sql = """
        WITH c AS (
            SELECT count(*) AS chains, count(*) FILTER (WHERE status = 'ok') AS ok,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   (SELECT coalesce(sum(n_thoughts), 0) FROM _chain_facts) AS thoughts,
                   (SELECT coalesce(sum(end_s - start_s), 0) FROM _chain_facts) AS chain_seconds
            FROM chains),
        rejected AS (SELECT DISTINCT run, chain_id FROM verdicts WHERE status = 'failed' OR NOT passed),
        kept AS (SELECT count(*) AS n FROM chains c ANTI JOIN rejected r ON r.run = c.run AND r.chain_id = c.chain_id
                 WHERE c.status = 'ok'),
        cl AS (SELECT count(*) AS clips, coalesce(sum(end_s - start_s), 0) AS seconds,
                      (SELECT count(*) FROM (SELECT DISTINCT run, window_id FROM clips WHERE status = 'ok')) AS windows
               FROM clips WHERE status = 'ok'),
        v AS (SELECT count(*) AS videos, count(*) FILTER (WHERE status = 'ok') AS ok,
                     coalesce(sum(duration_s) FILTER (WHERE status = 'ok'), 0) AS seconds FROM videos)
        SELECT * FROM (VALUES
            ('videos in', (SELECT videos FROM v)::DOUBLE),
            ('videos ok', (SELECT ok FROM v)),
            ('video hours ok', round((SELECT seconds FROM v) / 3600, 4)),
            ('clips ok', (SELECT clips FROM cl)),
            ('windows', (SELECT windows FROM cl)),
            ('chains', (SELECT chains FROM c)),
            ('chains ok', (SELECT ok FROM c)),
            ('chains failed', (SELECT failed FROM c)),
            ('chains kept (ok, no check failed)', (SELECT n FROM kept)),
            ('thoughts (in ok chains)', (SELECT thoughts FROM c)),
            ('thoughts per minute of video (ok chains)',
                round((SELECT thoughts FROM c) / nullif((SELECT chain_seconds FROM c) / 60, 0), 3)),
            ('clips per minute of video (ok clips)',
                round((SELECT clips FROM cl) / nullif((SELECT seconds FROM cl) / 60, 0), 3))
        ) AS t(metric, value)"""
    return _section(cat, "corpus", "Corpus", sql)


# Each measure: a query yielding one column `x`. Ids come from content and repeat across runs of
# the same videos: per-item groups are per run.
# The review that counts for a chain: its latest successful one (a chain may be reviewed again;
# failed review rows record annotations that could not be used).
LATEST_REVIEWS = """(SELECT * FROM reviews WHERE status = 'ok'
    QUALIFY row_number() OVER (PARTITION BY run, chain_id ORDER BY reviewed_at DESC NULLS LAST, annotation_id DESC) = 1)"""


MEASURES: list[tuple[str, str]] = [
    ("clips per video", "SELECT count(*) AS x FROM clips WHERE status = 'ok' GROUP BY run, video_id"),
    ("clip duration (s)", "SELECT end_s - start_s AS x FROM clips WHERE status = 'ok'"),
    ("clips per window", "SELECT count(*) AS x FROM clips WHERE status = 'ok' GROUP BY run, window_id"),
    ("window duration (s)", "SELECT max(end_s) - min(start_s) AS x FROM clips WHERE status = 'ok' GROUP BY run, window_id"),
    ("chains per window", "SELECT count(*) AS x FROM chains WHERE status = 'ok' GROUP BY run, window_id"),
    ("thoughts per chain", "SELECT n_thoughts AS x FROM _chain_facts"),
    ("thoughts per minute (per chain)", "SELECT n_thoughts / ((end_s - start_s) / 60) AS x FROM _chain_facts WHERE end_s > start_s"),
    ("review lead time (s)", f"SELECT lead_time_s AS x FROM {LATEST_REVIEWS}"),
]
THOUGHT_LENGTH = "thought length (chars)"  # from the exact length counts (thought_length_counts)


def distributions_section(cat: Catalog) -> Section:
    ensure_facts(cat)
    parts = []
    for k, (name, values) in enumerate(MEASURES):
        parts.append(
            f"SELECT {k} AS k, '{name}' AS measure, count(x) AS n, round(avg(x), 3) AS mean, round(min(x), 3) AS min, "
            f"round(quantile_cont(x, 0.1), 3) AS p10, round(quantile_cont(x, 0.5), 3) AS p50, "
            f"round(quantile_cont(x, 0.9), 3) AS p90, round(max(x), 3) AS max FROM ({values})"
        )
    sql = "SELECT measure, n, mean, min, p10, p50, p90, max FROM (" + " UNION ALL ".join(parts) + ") ORDER BY k"
    section = _section(cat, "distributions", "Distributions (ok rows)", sql)
    counts = thought_length_counts(cat)
    n = sum(c for _, c in counts)
    mean = round(sum(v * c for v, c in counts) / n, 3) if n else None
    row = [THOUGHT_LENGTH, n, mean, float(counts[0][0]) if counts else None]
    row += [None if (x := quantile_from_counts(counts, q)) is None else round(x, 3) for q in QUANTILES]
    row.append(float(counts[-1][0]) if counts else None)
    section.rows.insert(7, row)  # after the other thought measures
    section.sql.append("SELECT n_chars, count(*) FROM thoughts WHERE chain_status = 'ok' GROUP BY ALL  -- quantiles from these counts")
    return section


# Clip signals (stage `signals`, docs/signals.md): over every measured clip, kept or excluded
# (an excluded clip keeps its measurements), so the distributions show where the bars cut.
SIGNAL_MEASURES: list[tuple[str, str]] = [
    ("brightness (luma 0-255)", "brightness"),
    ("blur (Laplacian variance)", "blur"),
    ("motion (px/s at 576 px)", "motion"),
    ("text area (share of frame)", "text_area"),
    ("people per clip", "people"),
    ("faces per clip", "faces"),
]


def signals_section(cat: Catalog) -> Section | None:
    """Distributions of the clip signals; None (no section) when the run has no clip_signals."""
    if not cat.has("clip_signals"):
        return None
    parts = []
    for k, (name, column) in enumerate(SIGNAL_MEASURES):
        x = quote(column)
        parts.append(
            f"SELECT {k} AS k, '{name}' AS measure, count({x}) AS n, round(avg({x}), 3) AS mean, round(min({x}), 3) AS min, "
            f"round(quantile_cont({x}, 0.1), 3) AS p10, round(quantile_cont({x}, 0.5), 3) AS p50, "
            f"round(quantile_cont({x}, 0.9), 3) AS p90, round(max({x}), 3) AS max FROM clip_signals"
        )
    sql = "SELECT measure, n, mean, min, p10, p50, p90, max FROM (" + " UNION ALL ".join(parts) + ") ORDER BY k"
    return _section(cat, "signals", "Clip signals (every measured clip, kept or excluded)", sql)


def signal_exclusions_section(cat: Catalog) -> Section | None:
    """Clips per exclusion code (a clip outside several bars counts under each), and unreadable
    clips; the share is of all clip_signals rows."""
    if not cat.has("clip_signals"):
        return None
    sql = """
        WITH codes AS (
            SELECT unnest(exclude_reasons) AS reason FROM clip_signals WHERE len(exclude_reasons) > 0
            UNION ALL
            SELECT coalesce(reason, 'unknown') FROM clip_signals WHERE status = 'failed' AND coalesce(len(exclude_reasons), 0) = 0)
        SELECT * FROM (
            SELECT 'kept' AS reason, count(*) FILTER (WHERE status = 'ok') AS clips,
                   round(count(*) FILTER (WHERE status = 'ok') / nullif(count(*), 0), 4) AS share FROM clip_signals)
        UNION ALL
        SELECT * FROM (
            SELECT reason, count(*) AS clips, round(count(*) / nullif((SELECT count(*) FROM clip_signals), 0), 4) AS share
            FROM codes GROUP BY ALL ORDER BY clips DESC, reason)"""
    return _section(cat, "signal_exclusions", "Clip signals: kept and excluded (by code)", sql)


def qa_mix_section(cat: Catalog) -> Section:
    sql = """
        SELECT coalesce(qa_type, '(none)') AS type, count(*) AS chains, round(count(*) / sum(count(*)) OVER (), 4) AS share,
               round(avg(n_thoughts), 2) AS mean_thoughts
        FROM _chain_facts GROUP BY ALL ORDER BY chains DESC, type"""
    return _section(cat, "qa_mix", "QA type mix (ok chains)", sql)


# A chain's evidence span is its question's (think copies it); chains written before the column
# existed read it from their question.
_CHAIN_SPANS = """
        SELECT coalesce(c.qa_template, '(none)') AS template, coalesce(c.evidence_span, q.evidence_span, '(none)') AS evidence_span
        FROM chains c LEFT JOIN questions q ON q.run = c.run AND q.question_id = c.question_id WHERE c.status = 'ok'"""


def _question_mix(cat: Catalog, key: str, title: str, by: str) -> Section:
    sql = f"""
        WITH q AS (SELECT coalesce({by}, '(none)') AS {by}, count(*) AS questions FROM questions WHERE status = 'ok' GROUP BY ALL),
        c AS (SELECT {by}, count(*) AS chains FROM ({_CHAIN_SPANS}) GROUP BY ALL)
        SELECT {by}, coalesce(questions, 0) AS questions, coalesce(chains, 0) AS chains,
               round(coalesce(chains, 0) / nullif(sum(coalesce(chains, 0)) OVER (), 0), 4) AS chain_share
        FROM q FULL JOIN c USING ({by}) ORDER BY chains DESC, questions DESC, {by}"""
    return _section(cat, key, title, sql)


def evidence_span_section(cat: Catalog) -> Section:
    """Questions and ok chains per evidence span: current (the last clip and the one before),
    recent (the last 3 clips), window (older evidence); curation/questions.py."""
    return _question_mix(cat, "evidence_spans", "Evidence span (ok questions and chains)", "evidence_span")


def template_section(cat: Catalog) -> Section:
    return _question_mix(cat, "templates", "Question templates (ok questions and chains)", "template")


def answer_letters_section(cat: Catalog) -> Section:
    """Observed answer letters of multiple-choice chains against what a uniform draw over each
    question's own options would give (a question with 2 options can only be A or B)."""
    sql = """
        WITH mc AS (SELECT answer_letter, n_options FROM qa WHERE status = 'ok' AND type = 'multiple_choice'),
        total AS (SELECT count(*) AS n FROM mc),
        observed AS (SELECT coalesce(answer_letter, '(none)') AS letter, count(*) AS chains FROM mc GROUP BY ALL),
        expected AS (SELECT chr((65 + i)::INTEGER) AS letter, sum(1.0 / n_options) AS chains
                     FROM (SELECT unnest(range(n_options)) AS i, n_options FROM mc WHERE n_options > 0) GROUP BY ALL)
        SELECT coalesce(o.letter, e.letter) AS letter, coalesce(o.chains, 0) AS chains,
               round(coalesce(o.chains, 0) / nullif((SELECT n FROM total), 0), 4) AS share,
               round(coalesce(e.chains, 0) / nullif((SELECT n FROM total), 0), 4) AS uniform_share
        FROM observed o FULL JOIN expected e ON o.letter = e.letter ORDER BY letter"""
    return _section(cat, "answer_letters", "Answer-letter balance (multiple choice)", sql)


def checks_section(cat: Catalog) -> Section:
    sql = """
        SELECT "check", count(*) AS verdicts, count(*) FILTER (WHERE status = 'ok' AND passed) AS passed,
               count(*) FILTER (WHERE status = 'ok' AND NOT passed) AS rejected,
               count(*) FILTER (WHERE status = 'failed') AS errors,
               round(count(*) FILTER (WHERE status = 'ok' AND passed) / nullif(count(*) FILTER (WHERE status = 'ok'), 0), 4) AS pass_rate
        FROM all_verdicts GROUP BY ALL ORDER BY "check" """
    return _section(cat, "checks", "Pass rate per check", sql)


REJECTION_SOURCES = ["videos", "clips", "clip_signals", "captions", "graphs", "chains", "teacher_usage"]


def rejections_section(cat: Catalog, top: int = 15) -> Section:
    """Every way an item was lost: a stage row `failed`, a check not passed, a review rejected."""
    selects = [
        f"SELECT '{t}' AS source, coalesce(reason, 'unknown') AS reason, count(*) AS rows FROM {quote(t)} WHERE status = 'failed' GROUP BY ALL"
        for t in REJECTION_SOURCES
        if t in cat.tables
    ]
    selects.append("SELECT 'check ' || \"check\", 'checker_error:' || coalesce(reason, 'unknown'), count(*) FROM all_verdicts WHERE status = 'failed' GROUP BY ALL")
    selects.append("SELECT 'check ' || \"check\", coalesce(reason, \"check\" || '_failed'), count(*) FROM all_verdicts WHERE status = 'ok' AND NOT passed GROUP BY ALL")
    selects.append(f"SELECT 'review', coalesce(decision_reason, 'rejected'), count(*) FROM {LATEST_REVIEWS} WHERE decision = 'reject' GROUP BY ALL")
    sql = "SELECT * FROM (" + " UNION ALL ".join(selects) + f") ORDER BY rows DESC, source, reason LIMIT {int(top)}"
    return _section(cat, "rejections", f"Top rejection reasons (top {top})", sql)


def teacher_section(cat: Catalog) -> Section:
    # `calls`: one row of teacher_usage per teacher call; `http_requests`: what was sent to the
    # endpoint for them (retries and repair requests included, 0 for a cache hit).
    body = """count(*) AS calls, coalesce(sum(requests), 0) AS http_requests, count(*) FILTER (WHERE cached) AS cache_hits,
               round(count(*) FILTER (WHERE cached) / nullif(count(*), 0), 4) AS cache_hit_rate,
               coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens,
               coalesce(sum(retries), 0) AS retries, count(*) FILTER (WHERE status = 'failed') AS failed,
               round(avg(latency_s) FILTER (WHERE NOT cached), 3) AS mean_latency_s,
               round(coalesce(sum(cost_usd), 0), 4) AS cost_usd"""
    sql = f"""
        SELECT * FROM (SELECT coalesce(stage, '?') AS stage, coalesce(model, '?') AS model, {body}
                       FROM teacher_usage GROUP BY ALL ORDER BY stage, model)
        UNION ALL
        SELECT 'all', '', {body} FROM teacher_usage"""
    unpriced = cat.one("SELECT count(*) FROM teacher_usage WHERE cost_usd IS NULL AND NOT coalesce(cached, false)")[0]
    note = f"{unpriced} uncached request(s) have no cost_usd (price unknown): the cost is a lower bound" if unpriced else None
    return _section(cat, "teacher", "Teacher requests, tokens, cache hits, estimated cost", sql, note)


def reviews_section(cat: Catalog) -> Section:
    sql = f"""
        SELECT coalesce(decision, '(none)') AS decision, coalesce(decision_reason, '') AS reason, count(*) AS chains,
               count(*) FILTER (WHERE corrections IS NOT NULL AND corrections NOT IN ('', '{{}}', 'null')) AS corrected,
               round(count(*) / sum(count(*)) OVER (), 4) AS share, round(avg(lead_time_s), 1) AS mean_lead_time_s
        FROM {LATEST_REVIEWS} GROUP BY ALL ORDER BY chains DESC, decision, reason"""
    return _section(cat, "reviews", "Review outcomes (latest review per chain)", sql, None if cat.has("reviews") else "no reviews in this scope yet")


def review_agreement_section(cat: Catalog) -> Section:
    """How often the automatic checks flagged what a human rejected (and accepted)."""
    sql = f"""
        WITH flagged AS (SELECT run, chain_id, bool_or(NOT passed) AS flagged FROM verdicts WHERE status = 'ok' GROUP BY ALL)
        SELECT decision, flagged_by_checks, chains, round(chains / sum(chains) OVER (PARTITION BY decision), 4) AS share_of_decision
        FROM (SELECT r.decision, coalesce(f.flagged, false) AS flagged_by_checks, count(*) AS chains
              FROM {LATEST_REVIEWS} r LEFT JOIN flagged f USING (run, chain_id) GROUP BY ALL)
        ORDER BY decision, flagged_by_checks"""
    return _section(cat, "review_agreement", "Human decisions vs automatic checks", sql, None if cat.has("reviews") else "no reviews in this scope yet")


SECTIONS = [
    tables_section,
    videos_section,
    corpus_section,
    distributions_section,
    signals_section,
    signal_exclusions_section,
    qa_mix_section,
    evidence_span_section,
    template_section,
    answer_letters_section,
    checks_section,
    rejections_section,
    teacher_section,
    reviews_section,
    review_agreement_section,
]


def standard_report(cat: Catalog) -> Report:
    build_facts(cat)  # fresh: the parts may have changed since the last report on this connection
    # a builder returns None when its table is not in the scope (e.g. no signals stage)
    return Report(cat.scope.label, [s for s in (build(cat) for build in SECTIONS) if s is not None])


# ---- data for the plots ----------------------------------------------------------------------
@dataclass
class Histogram:
    label: str
    edges: list[float]  # len(counts) + 1
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


def nice_width(span: float, bins: int) -> float:
    """A round bin width (1, 2, 2.5 or 5 x 10^k) giving about `bins` bins over `span`."""
    if span <= 0:
        return 1.0
    raw = span / bins
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if raw <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def histogram(cat: Catalog, label: str, values_sql: str, bins: int = 30) -> Histogram:
    """Equal-width histogram of the column `x` of `values_sql`, binned in DuckDB."""
    lo, hi = cat.one(f"SELECT min(x), max(x) FROM ({values_sql})")
    if lo is None:
        return Histogram(label, [], [])
    width = nice_width(float(hi) - float(lo), bins)
    start = math.floor(float(lo) / width) * width
    rows = cat.rows(f"SELECT floor((x - {start!r}) / {width!r})::BIGINT AS b, count(*) FROM ({values_sql}) WHERE x IS NOT NULL GROUP BY b ORDER BY b")
    n_bins = max(b for b, _ in rows) + 1
    counts = [0] * n_bins
    for b, n in rows:
        counts[b] = n
    return Histogram(label, [start + i * width for i in range(n_bins + 1)], counts)


def histogram_from_counts(label: str, counts: list[tuple[int, int]], bins: int = 30) -> Histogram:
    if not counts:
        return Histogram(label, [], [])
    lo, hi = counts[0][0], counts[-1][0]
    width = nice_width(hi - lo, bins)
    start = math.floor(lo / width) * width
    n_bins = int((hi - start) // width) + 1
    binned = [0] * n_bins
    for value, n in counts:
        binned[min(int((value - start) // width), n_bins - 1)] += n
    return Histogram(label, [start + i * width for i in range(n_bins + 1)], binned)


@dataclass
class PlotData:
    video_duration: Histogram
    clip_duration: Histogram
    window_duration: Histogram
    thought_length: Histogram
    thoughts_over_time: list[tuple[float, int, float]]  # (seconds from window start, thoughts, mean chars)
    thoughts_bin_s: float
    rejections: list[tuple[str, str, int]]
    qa_mix: list[tuple[str, int]]
    answer_letters: list[tuple[str, int, float, float]]  # letter, chains, share, uniform share
    signals: list[Histogram] = field(default_factory=list)  # one per SIGNAL_MEASURES; empty: no clip_signals


def thoughts_over_time(cat: Catalog, bins: int = 30) -> tuple[list[tuple[float, int, float]], float]:
    ensure_facts(cat)
    hi = cat.one("SELECT max(offset_s) FROM _thought_facts")[0]
    if hi is None:
        return [], 1.0
    width = nice_width(max(float(hi), 1.0), bins)
    rows = cat.rows(
        f"SELECT floor(greatest(offset_s, 0) / {width!r}) * {width!r} AS t, count(*), avg(n_chars) "
        "FROM _thought_facts GROUP BY t ORDER BY t"
    )
    return [(float(t), int(n), float(m or 0)) for t, n, m in rows], width


def plot_data(cat: Catalog, report: Report | None = None) -> PlotData:
    report = report or standard_report(cat)
    series, width = thoughts_over_time(cat)
    return PlotData(
        video_duration=histogram(cat, "video duration (s)", "SELECT duration_s AS x FROM videos WHERE status = 'ok'"),
        clip_duration=histogram(cat, "clip duration (s)", MEASURES[1][1]),
        window_duration=histogram(cat, "window duration (s)", MEASURES[3][1]),
        thought_length=histogram_from_counts(THOUGHT_LENGTH, thought_length_counts(cat)),
        thoughts_over_time=series,
        thoughts_bin_s=width,
        rejections=[tuple(r) for r in report.section("rejections").rows],
        qa_mix=[(r[0], r[1]) for r in report.section("qa_mix").rows],
        answer_letters=[tuple(r) for r in report.section("answer_letters").rows],
        signals=signal_histograms(cat),
    )


def signal_histograms(cat: Catalog) -> list[Histogram]:
    if not cat.has("clip_signals"):
        return []
    return [histogram(cat, name, f"SELECT {quote(column)} AS x FROM clip_signals") for name, column in SIGNAL_MEASURES]


# ---- text formatting shared by the terminal and the HTML report ----------------------------
def format_value(column: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and (column.endswith("share") or column.endswith("rate")):
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ---- the SQL cookbook (docs/sql-cookbook.md) ----------------------------------------------------
COOKBOOK_ENTRY = re.compile(r"^###\s+\d+\.\s+(?P<title>.+?)\s*$.*?^```sql\s*$(?P<sql>.*?)^```\s*$", re.M | re.S)


def read_cookbook(path: Path | str) -> dict[str, str]:
    """Title -> SQL of every `### N. Title` entry of the cookbook (its first ```sql block)."""
    return {m["title"]: m["sql"].strip() for m in COOKBOOK_ENTRY.finditer(Path(path).read_text())}
