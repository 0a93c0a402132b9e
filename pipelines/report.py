"""The HTML corpus report: the standard report's tables plus plots, in ONE self-contained file.

Plots are matplotlib figures embedded as base64 PNG (`<img src="data:image/png;base64,...">`), the
style is inline: the file can be mailed, attached to an issue or opened offline. Written to the
run's `reports/stats.html` by `vstw stats RUN --html`.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone
from pathlib import Path

# Figures are built with matplotlib's object API (Figure, not pyplot): no GUI backend, no global
# state, so rendering works the same in a terminal, a test, a worker or a notebook.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

from pipelines.catalog import Catalog
from pipelines.rundir import atomic_write_bytes
from pipelines.stats import Histogram, PlotData, Report, Section, format_value, plot_data, standard_report

BLUE, GREY, RED = "#3b6ea8", "#9aa5b1", "#c0504d"

# The plots, in page order: name -> (title, caption). Tests check that each one is embedded.
PLOTS: dict[str, tuple[str, str]] = {
    "durations": ("Durations", "How long the videos, clips and windows are (ok rows)."),
    "thought_length": ("Thought length", "Characters per thought (ok chains)."),
    "thoughts_over_time": ("Thoughts over time", "Where thoughts fall in their window, and how long they are there."),
    "qa_mix": ("QA type mix", "Question types of the ok chains."),
    "answer_letters": ("Answer-letter balance", "Multiple-choice answer letters against a uniform draw over each question's options."),
    "rejections": ("Rejection reasons", "Every way items were lost: failed stage rows, checks not passed, reviews rejected."),
}
# Shown only when the scope has the table they plot.
OPTIONAL_PLOTS: dict[str, tuple[str, str]] = {
    "signals": ("Clip signals", "Brightness, blur, motion, text area, people and faces of every measured clip (docs/signals.md)."),
}


# ---- figures ---------------------------------------------------------------------------------
def _counts_axis(axis) -> None:
    """Whole numbers, with thousands separators (1,000,000 reads; 1e6 and 1000000 do not)."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color=GREY, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _hist(ax, h: Histogram, colour: str = BLUE) -> None:
    ax.set_title(h.label, fontsize=11)
    if not h.counts:
        _no_data(ax, "no data yet")
        return
    widths = [b - a for a, b in zip(h.edges[:-1], h.edges[1:])]
    ax.bar(h.edges[:-1], h.counts, width=widths, align="edge", color=colour, edgecolor="white", linewidth=0.5)
    ax.set_xlabel(h.label)
    ax.set_ylabel("count")
    _counts_axis(ax.yaxis)
    ax.text(0.98, 0.95, f"n = {h.total:,}", ha="right", va="top", transform=ax.transAxes, fontsize=9)


def fig_durations(d: PlotData):
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for ax, h in zip(axes, (d.video_duration, d.clip_duration, d.window_duration)):
        _hist(ax, h)
    return fig


def fig_thought_length(d: PlotData):
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    _hist(ax, d.thought_length)
    return fig


def fig_thoughts_over_time(d: PlotData):
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    ax.set_title(f"thoughts by time since the window start ({d.thoughts_bin_s:g} s bins)", fontsize=11)
    if not d.thoughts_over_time:
        _no_data(ax, "no chains yet")
        return fig
    t = [row[0] for row in d.thoughts_over_time]
    ax.bar(t, [row[1] for row in d.thoughts_over_time], width=d.thoughts_bin_s, align="edge", color=BLUE, edgecolor="white", linewidth=0.5, label="thoughts")
    ax.set_xlabel("seconds since the window start")
    ax.set_ylabel("thoughts", color=BLUE)
    _counts_axis(ax.yaxis)
    right = ax.twinx()
    right.plot([x + d.thoughts_bin_s / 2 for x in t], [row[2] for row in d.thoughts_over_time], color=RED, marker="o", markersize=3, label="mean length")
    right.set_ylabel("mean thought length (chars)", color=RED)
    right.set_ylim(bottom=0)
    return fig


def fig_qa_mix(d: PlotData):
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    ax.set_title("ok chains by question type", fontsize=11)
    if not d.qa_mix:
        _no_data(ax, "no chains yet")
        return fig
    labels, counts = [r[0] for r in d.qa_mix], [r[1] for r in d.qa_mix]
    bars = ax.bar(labels, counts, color=BLUE)
    total = sum(counts)
    ax.bar_label(bars, labels=[f"{c:,} ({c / total:.0%})" for c in counts], fontsize=9)
    ax.set_ylabel("chains")
    _counts_axis(ax.yaxis)
    ax.margins(y=0.15)
    return fig


def fig_answer_letters(d: PlotData):
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    ax.set_title("multiple-choice answer letters", fontsize=11)
    if not d.answer_letters:
        _no_data(ax, "no multiple-choice chains yet")
        return fig
    letters = [r[0] for r in d.answer_letters]
    x = range(len(letters))
    ax.bar([i - 0.2 for i in x], [(r[2] or 0) * 100 for r in d.answer_letters], width=0.4, color=BLUE, label="observed")
    ax.bar([i + 0.2 for i in x], [(r[3] or 0) * 100 for r in d.answer_letters], width=0.4, color=GREY, label="uniform over the options")
    ax.set_xticks(list(x), letters)
    ax.set_xlabel("answer letter")
    ax.set_ylabel("% of multiple-choice chains")
    ax.legend(fontsize=9)
    return fig


def fig_rejections(d: PlotData):
    rows = list(reversed(d.rejections))  # largest at the top
    fig = Figure(figsize=(9, max(2.5, 0.35 * len(rows) + 1.2)))
    ax = fig.subplots()
    ax.set_title("top rejection reasons", fontsize=11)
    if not rows:
        _no_data(ax, "nothing rejected (or nothing checked yet)")
        return fig
    bars = ax.barh([f"{src}: {reason}" for src, reason, _ in rows], [n for _, _, n in rows], color=RED)
    ax.bar_label(bars, labels=[f"{n:,}" for _, _, n in rows], fontsize=9, padding=2)
    ax.set_xlabel("rows")
    _counts_axis(ax.xaxis)
    ax.margins(x=0.12)
    return fig


def fig_signals(d: PlotData):
    fig = Figure(figsize=(13, 6.4))
    for ax, h in zip(fig.subplots(2, 3).ravel(), d.signals):
        _hist(ax, h)
    return fig


FIGURES = {
    "durations": fig_durations,
    "thought_length": fig_thought_length,
    "thoughts_over_time": fig_thoughts_over_time,
    "qa_mix": fig_qa_mix,
    "answer_letters": fig_answer_letters,
    "rejections": fig_rejections,
    "signals": fig_signals,
}


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def plot_png(name: str, d: PlotData) -> bytes:
    """One plot of PLOTS as PNG bytes (the notebook shows them with IPython.display.Image)."""
    return png_bytes(FIGURES[name](d))


def render_plots(d: PlotData) -> dict[str, str]:
    """Plot name -> base64 PNG."""
    names = list(PLOTS) + (["signals"] if d.signals else [])
    return {name: base64.b64encode(plot_png(name, d)).decode("ascii") for name in names}


# ---- HTML --------------------------------------------------------------------------------------
STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #777; font-size: 0.9em; } figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""

# Which plot follows which section of the report.
PLOTS_AFTER = {"distributions": ["durations", "thought_length", "thoughts_over_time"], "qa_mix": ["qa_mix"], "answer_letters": ["answer_letters"], "rejections": ["rejections"], "signals": ["signals"]}


def section_html(s: Section, links: dict[int, str] | None = None) -> str:
    """A section's table; `links` (row index -> href) adds an "examples" column (the row's gallery)."""
    columns = [*s.columns, "examples"] if links else list(s.columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(s.rows):
        cells = []
        for col, value in zip(s.columns, row):
            cls = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
            cells.append(f"<td{cls}>{html.escape(format_value(col, value))}</td>")
        if links:
            href = links.get(i)
            cells.append(f'<td><a href="{html.escape(href)}">chains</a></td>' if href else "<td></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{html.escape(s.note)}</p>' if s.note else ""
    empty = '<p class="note">no rows</p>' if not s.rows else ""
    return f'<h2 id="{s.key}">{html.escape(s.title)}</h2>{note}<table><tr>{head}</tr>{"".join(body)}</table>{empty}'


def figure_html(name: str, png: str) -> str:
    title, caption = {**PLOTS, **OPTIONAL_PLOTS}[name]
    return (
        f'<figure id="plot-{name}"><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
        f"<figcaption><b>{html.escape(title)}.</b> {html.escape(caption)}</figcaption></figure>"
    )


def report_html(report: Report, plots: dict[str, str], title: str, links: dict[tuple[str, int], str] | None = None) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(report.scope)} &middot; generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by <code>vstw stats --html</code></p>',
    ]
    for s in report.sections:
        parts.append(section_html(s, {i: href for (key, i), href in (links or {}).items() if key == s.key}))
        parts.extend(figure_html(name, plots[name]) for name in PLOTS_AFTER.get(s.key, []) if name in plots)
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(cat: Catalog, out: Path | str, title: str | None = None, report: Report | None = None, examples: bool = True, progress: bool = False) -> Path:
    """Compute the report and its plots, write the HTML atomically, return its path. `examples`:
    each rejection reason and check about chains links to a gallery of some of them, written
    under gallery/ beside the report (pipelines/gallery_links.py)."""
    out = Path(out)
    report = report or standard_report(cat)
    plots = render_plots(plot_data(cat, report))
    links = None
    if examples and cat.has("chains"):
        from pipelines.gallery_links import write_example_galleries

        links = write_example_galleries(cat, report, out.parent, progress=progress)
    text = report_html(report, plots, title or f"Corpus report: {cat.scope.label}", links)
    atomic_write_bytes(out, text.encode("utf-8"))
    return out
