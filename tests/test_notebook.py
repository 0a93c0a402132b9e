"""notebooks/corpus_stats.ipynb executes top to bottom (nbclient, a real Jupyter kernel) against
a run, and shows what it says it shows."""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from _corpus_fixtures import PROJECT, copy_run, demo_run_template, full_corpus_template
from pipelines.catalog import open_run
from pipelines.report import PLOTS
from pipelines.stats import standard_report

NOTEBOOK = PROJECT / "notebooks" / "corpus_stats.ipynb"


def execute(runs: Path, run: str, monkeypatch) -> nbformat.NotebookNode:
    # The kernel inherits this environment: the notebook finds its run through it.
    monkeypatch.setenv("VSTW_RUNS", str(runs))
    monkeypatch.setenv("VSTW_RUN", run)
    monkeypatch.delenv("VSTW_HOME", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return nb


def outputs(nb) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def text_of(nb) -> str:
    parts = []
    for out in outputs(nb):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        for mime in ("text/plain", "text/markdown", "text/html"):
            if mime in out.get("data", {}):
                parts.append(out["data"][mime])
    return "\n".join(parts)


def test_notebook_executes_against_a_full_run(tmp_path, monkeypatch):
    template = full_corpus_template(str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    copy_run(template, runs / template.name)
    nb = execute(runs, template.name, monkeypatch)

    assert not [o for o in outputs(nb) if o.get("output_type") == "error"]
    text = text_of(nb)
    with open_run(runs / template.name) as cat:
        report = standard_report(cat)
    kept = report.section("corpus").lookup(metric="chains kept (ok, no check failed)")["value"]
    assert f"chains kept: {kept:.0f}" in text
    for section in report.sections:
        assert section.title in text
    assert "Which videos lost most chains, and why?" in text
    pngs = [base64.b64decode(o["data"]["image/png"]) for o in outputs(nb) if "image/png" in o.get("data", {})]
    # every report plot, plus the notebook's own box plot
    assert len(pngs) == len(PLOTS) + 1
    assert all(p.startswith(b"\x89PNG") for p in pngs)


def test_notebook_executes_against_a_run_without_chains(tmp_path, monkeypatch):
    template = demo_run_template(str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    copy_run(template, runs / template.name)
    nb = execute(runs, template.name, monkeypatch)
    assert not [o for o in outputs(nb) if o.get("output_type") == "error"]
    assert "no thoughts in this run yet" in text_of(nb)


def test_the_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


@pytest.fixture(autouse=True)
def _inline_plots(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
