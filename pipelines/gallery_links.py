"""From the corpus report to the examples: a gallery page per rejection reason and per check.

`vstw stats --html` calls `write_example_galleries`; each row of the report's "rejections" and
"checks" sections that is about chains gets a small gallery (a seeded sample) written under
`gallery/` beside the report, and the row links to it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pipelines.catalog import Catalog, sql_string
from pipelines.gallery import GalleryError, GalleryRequest, write_gallery
from pipelines.stats import LATEST_REVIEWS, Report

EXAMPLES_PER_PAGE = 12


def _verdict_condition(check: str, failed_how: str) -> str:
    return f"""(run, chain_id) IN (SELECT run, chain_id FROM all_verdicts WHERE "check" = {sql_string(check)} AND {failed_how})"""


def rejection_condition(source: str, reason: str) -> str | None:
    """The gallery condition for one row of the rejections section (None: not about chains)."""
    if source == "chains":
        return f"status = 'failed' AND coalesce(reason, 'unknown') = {sql_string(reason)}"
    if source.startswith("check "):
        check = source[len("check ") :]
        if reason.startswith("checker_error:"):
            code = reason[len("checker_error:") :]
            return _verdict_condition(check, f"status = 'failed' AND coalesce(reason, 'unknown') = {sql_string(code)}")
        return _verdict_condition(check, f"status = 'ok' AND NOT passed AND coalesce(reason, \"check\" || '_failed') = {sql_string(reason)}")
    if source == "review":
        return f"(run, chain_id) IN (SELECT run, chain_id FROM {LATEST_REVIEWS} WHERE decision = 'reject' AND coalesce(decision_reason, 'rejected') = {sql_string(reason)})"
    return None


def check_condition(check: str, rejected: int) -> tuple[str, str]:
    """The gallery of a check's row: the chains it rejected, or (none rejected) the ones it passed."""
    if rejected:
        return _verdict_condition(check, "status = 'ok' AND NOT passed"), f"chains the check {check} rejected"
    return _verdict_condition(check, "status = 'ok' AND passed"), f"chains the check {check} passed"


def page_name(kind: str, *words: str) -> str:
    text = "-".join(words)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]
    return f"{kind}-{slug}-{hashlib.sha1(text.encode()).hexdigest()[:6]}.html"


def example_pages(report: Report) -> dict[tuple[str, int], tuple[str, str, str]]:
    """(section key, row index) -> (file name, condition, title) for every row that is about chains."""
    pages = {}
    for i, row in enumerate(report.section("rejections").as_dicts()):
        condition = rejection_condition(row["source"], row["reason"])
        if condition:
            pages[("rejections", i)] = (page_name("reason", row["source"], row["reason"]), condition, f"{row['source']}: {row['reason']}")
    for i, row in enumerate(report.section("checks").as_dicts()):
        condition, title = check_condition(row["check"], row["rejected"] or 0)
        pages[("checks", i)] = (page_name("check", row["check"]), condition, title)
    return pages


def write_example_galleries(cat: Catalog, report: Report, out_dir: Path, progress: bool = False) -> dict[tuple[str, int], str]:
    """Write each example gallery under out_dir/gallery/; returns (section, row) -> href relative to
    out_dir. A row whose chains are gone (nothing matches) gets no link, never an error."""
    from tqdm.auto import tqdm

    links = {}
    pages = example_pages(report)
    for key, (name, condition, title) in tqdm(pages.items(), total=len(pages), desc="  examples", unit="page", disable=not progress, dynamic_ncols=True):
        request = GalleryRequest(sample=EXAMPLES_PER_PAGE, where=condition, title=f"Examples: {title}")
        try:
            write_gallery(cat, request, out_dir / "gallery" / name, progress=False)
        except GalleryError:
            continue
        links[key] = f"gallery/{name}"
    return links
