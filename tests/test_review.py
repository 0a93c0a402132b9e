"""Human review against a REAL Label Studio (from .venv-ls), started and stopped by `vstw review
serve`, with real videos from a demo run and a real headless Chromium.

The loop: push 3 chains, annotate through the API as a reviewer would (accept one, correct a
thought in another, reject the third), pull, apply the reviews: exactly that comes out.
"""

from __future__ import annotations

import json
import stat

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError
from selenium.webdriver.common.by import By
from typer.testing import CliRunner

from _review_fixtures import REPO, chain_rows, make_demo_run, write_chains
from annotation import server
from annotation.browser import capture, is_blank_png, logged_in, render_page, wait_for
from annotation.client import ReviewError, connect
from annotation.pull import pull_reviews
from annotation.push import find_project, push_chains, select_chains
from curation.reviews import apply_reviews
from pipelines.cli import app
from pipelines.rundir import RunDir

DOCUMENT_ROOT = REPO / "data"


@pytest.fixture(scope="session")
def run_dir(ls_starting, tmp_path_factory) -> RunDir:
    run = make_demo_run(tmp_path_factory.mktemp("runs"), "review")
    write_chains(run, chain_rows(run))
    return run


@pytest.fixture(scope="session")
def ls(run_dir, label_studio):
    """The session's Label Studio (tests/conftest.py), once the demo run made while it started
    is there (fixtures are set up in the order named)."""
    return label_studio


@pytest.fixture(scope="module")
def conn(ls):
    return connect(ls["info"].url, ls["creds"].token, DOCUMENT_ROOT)


def as_reviewer(task, decision: str, thought_edits: dict | None = None, labels: dict | None = None, reject_reason: str | None = None) -> list[dict]:
    """The result a reviewer submits in the editor: the pre-labels, with their edits."""
    result = json.loads(json.dumps(task.predictions[0].result))  # a deep copy
    for item in result:
        if item["from_name"] == "thought" and thought_edits and item["id"] in thought_edits:
            item["value"]["text"] = [thought_edits[item["id"]]]
    for region_id, label in (labels or {}).items():
        result.append({"id": region_id, "from_name": "thought_label", "to_name": "video", "type": "choices", "value": {"choices": [label]}})
    result.append({"id": "decision", "from_name": "decision", "to_name": "video", "type": "choices", "value": {"choices": [decision]}})
    if reject_reason:
        result.append({"id": "why", "from_name": "reject_reason", "to_name": "video", "type": "choices", "value": {"choices": [reject_reason]}})
    return result


def tasks_by_chain(conn, project_id) -> dict:
    tasks = list(conn.client.tasks.list(project=project_id, fields="all"))
    return {t.data["chain_id"]: t for t in tasks}


def test_server_is_local_with_a_private_token(ls):
    info, home = ls["info"], ls["home"]
    assert httpx.get(f"{info.url}/health").status_code == 200
    creds_file = home / "credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    assert json.loads(creds_file.read_text())["token"] == ls["creds"].token
    # the token works, a wrong one is refused with a clear message, a closed port too
    assert connect(info.url, ls["creds"].token).client.users.whoami().email == ls["creds"].username
    with pytest.raises(ReviewError, match="refused the API token"):
        connect(info.url, "0" * 40)
    with pytest.raises(ReviewError, match="cannot reach Label Studio"):
        connect(f"http://127.0.0.1:{server.free_port()}", ls["creds"].token, timeout=5)
    # `start` again returns the running server instead of a second one
    assert server.start(home, DOCUMENT_ROOT).pid == info.pid


def test_labeling_config_validates(conn):
    from annotation.client import label_config

    project_id = conn.client.projects.create(title="config check", label_config=label_config()).id
    conn.client.projects.validate_label_config(project_id, label_config=label_config())
    with pytest.raises(ApiError):
        conn.client.projects.validate_label_config(project_id, label_config=label_config().replace('toName="video"', 'toName="nothing"', 1))


def test_push_annotate_pull_apply(conn, run_dir, ls):
    chains = select_chains(run_dir, sample=3, seed=1)
    assert len(chains) == 3
    report = push_chains(conn, run_dir, chains)
    assert (report.created, report.already_there, report.skipped) == (3, 0, [])
    again = push_chains(conn, run_dir, chains)
    assert (again.created, again.already_there) == (0, 3)
    tasks = tasks_by_chain(conn, report.project_id)
    assert sorted(tasks) == sorted(c["chain_id"] for c in chains)  # still 3 tasks
    task = tasks[chains[0]["chain_id"]]
    assert task.data["video"].startswith("/data/local-files/?d=samples/")
    preds = list(conn.client.predictions.list(task=task.id))
    assert preds[0].model_version == "fixture-teacher|qa=qa-v1,think=think-v1"

    accepted, corrected, rejected = chains
    fix = "Two red circles enter from the left; the background is navy."
    conn.client.annotations.create(id=tasks[accepted["chain_id"]].id, result=as_reviewer(tasks[accepted["chain_id"]], "accept", labels={"seg0": "ok"}), lead_time=12.0)
    conn.client.annotations.create(
        id=tasks[corrected["chain_id"]].id,
        result=as_reviewer(tasks[corrected["chain_id"]], "accept", {"seg1": fix}, labels={"seg1": "hallucinated"}),
        lead_time=48.5,
    )
    conn.client.annotations.create(id=tasks[rejected["chain_id"]].id, result=as_reviewer(tasks[rejected["chain_id"]], "reject", reject_reason="wrong_answer"), lead_time=20.0)

    summary = pull_reviews(conn, run_dir)
    assert (summary["annotations"], summary["ok"], summary["failed_by_reason"]) == (3, 3, {})
    reviews = run_dir.read_rows("reviews")
    by_chain = {r["chain_id"]: r for r in reviews}
    assert by_chain[rejected["chain_id"]]["decision_reason"] == "wrong_answer"
    assert by_chain[corrected["chain_id"]]["lead_time_s"] == 48.5
    assert by_chain[corrected["chain_id"]]["labels"][1] == "hallucinated"
    assert by_chain[accepted["chain_id"]]["reviewer"] == ls["creds"].username

    out = {c["chain_id"]: c for c in apply_reviews(run_dir.read_rows("chains"), reviews)}
    assert rejected["chain_id"] not in out
    assert out[accepted["chain_id"]]["human_reviewed"] and out[accepted["chain_id"]]["thoughts"] == accepted["thoughts"]
    texts = [t["text"] for t in out[corrected["chain_id"]]["thoughts"]]
    assert texts[1] == fix and texts[0] == corrected["thoughts"][0]["text"]
    assert out[corrected["chain_id"]]["review_corrected"] == ["thoughts[1]"]
    untouched = [c for c in out.values() if c["chain_id"] not in (accepted["chain_id"], corrected["chain_id"])]
    assert untouched and all(not c["human_reviewed"] for c in untouched)
    assert len(out) == len(run_dir.read_rows("chains")) - 1

    # pulling again changes nothing
    before = sorted(p.name for p in run_dir.table_dir("reviews").glob("part-*.parquet"))
    assert pull_reviews(conn, run_dir)["parts_written"] == 0
    assert sorted(p.name for p in run_dir.table_dir("reviews").glob("part-*.parquet")) == before

    # the token never lands in the run folder
    token = ls["creds"].token.encode()
    assert not [p for p in run_dir.root.rglob("*") if p.is_file() and token in p.read_bytes()]


def test_faults_keep_everything(conn, run_dir, tmp_path):
    project_id = find_project(conn, f"vstw {run_dir.name}")
    assert project_id is not None, "runs after test_push_annotate_pull_apply"
    rows = chain_rows(run_dir)
    # a video outside the served folder: that chain is skipped with a reason, the others go in
    outside = dict(rows[-1], chain_id="ch-outside", video_path=str(tmp_path / "elsewhere" / "x.mp4"))
    report = push_chains(conn, run_dir, [outside, *rows])
    assert [s["reason"] for s in report.skipped] == ["review_video_not_served"] and "outside" in report.skipped[0]["error"]
    assert report.created == len(rows) - 3 and report.already_there == 3

    tasks = tasks_by_chain(conn, project_id)
    target = next(c for c in rows if tasks[c["chain_id"]].total_annotations == 0)
    task = tasks[target["chain_id"]]
    # an annotation on a segment that no longer exists (a region the task never had)
    orphan = {"id": "gone1", "from_name": "thought", "to_name": "video", "type": "textarea", "value": {"ranges": [{"start": 5000, "end": 5100}], "text": ["about a vanished clip"]}}
    conn.client.annotations.create(id=task.id, result=as_reviewer(task, "accept") + [orphan], lead_time=5.0)
    summary = pull_reviews(conn, run_dir)
    assert summary["failed_by_reason"] == {"review_unknown_segment": 1}
    assert any("frames 5000-5100" in m for m in summary["failed_messages"])
    failed = [r for r in run_dir.read_rows("reviews") if r["status"] == "failed"]
    assert len(failed) == 1 and "about a vanished clip" in failed[0]["raw_result"]
    # a task deleted in the UI: its review stays in the run
    reviewed = next(c for c in rows if tasks[c["chain_id"]].total_annotations > 0)
    conn.client.tasks.delete(str(tasks[reviewed["chain_id"]].id))
    summary = pull_reviews(conn, run_dir)
    assert summary["kept_from_earlier_pulls"] == 1
    assert reviewed["chain_id"] in {r["chain_id"] for r in run_dir.read_rows("reviews")}


def test_cli_push_with_where_and_sample_and_pull(ls, run_dir):
    env = {"VSTW_LS_TOKEN": ls["creds"].token, "VSTW_RUNS": str(run_dir.root.parent), "VSTW_HOME": str(REPO)}
    runner = CliRunner()

    def said(result) -> str:  # rich wraps long lines
        return " ".join(result.output.split())

    args = ["review", "push", str(run_dir.root), "--where", "len(thoughts) >= 6", "--sample", "1", "--seed", "2", "--url", ls["info"].url, "--document-root", str(DOCUMENT_ROOT), "--project", "cli check"]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "1 tasks created" in said(result)
    result = runner.invoke(app, args, env=env)
    assert "0 tasks created, 1 already there" in said(result)
    result = runner.invoke(app, ["review", "push", str(run_dir.root), "--where", "nonsense ==", "--url", ls["info"].url, "--document-root", str(DOCUMENT_ROOT)], env=env)
    assert result.exit_code == 2 and "not a valid predicate" in said(result)
    result = runner.invoke(app, ["review", "push", str(run_dir.root), "--url", ls["info"].url], env={**env, "VSTW_LS_TOKEN": "wrong"})
    assert result.exit_code == 2 and "refused the API token" in said(result)
    result = runner.invoke(app, ["review", "summary", str(run_dir.root)], env=env)
    assert result.exit_code == 0 and json.loads(result.output)["reviewed"] >= 2


def test_task_page_renders_video_and_timeline_segments(ls, conn, run_dir, tmp_path):
    project_id = find_project(conn, f"vstw {run_dir.name}")
    tasks = tasks_by_chain(conn, project_id)
    chain = max(chain_rows(run_dir), key=lambda c: len(c["thoughts"]))
    task = tasks[chain["chain_id"]]
    ready = "(() => { const v = document.querySelector('video'); return !!v && v.readyState >= 2 && document.querySelectorAll('.lsf-timeline').length > 0; })()"
    page = render_page(ls["info"].url, ls["creds"].username, ls["creds"].password, f"/projects/{project_id}/data?task={task.id}", tmp_path, ready_js=ready, timeout=120, name="task")
    assert page.ready, f"video or timeline never appeared; see {page.screenshot}"
    assert "<video" in page.dom and "lsf-timeline" in page.dom
    # one timeline region per thought, labelled with the segment label
    assert page.dom.count("lsf-tree__node_type_timelineregion") == len(chain["thoughts"])
    assert chain["qa"]["question"] in page.dom
    png = page.screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert not is_blank_png(page.screenshot)


def click(driver, element) -> None:
    """Scroll an element to the middle of its panel, as a person would, then click it (the
    editor's bottom bar covers whatever sits at the panel's lower edge)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def test_a_reviewer_labels_and_accepts_in_the_browser_and_pull_sees_it(ls, conn, run_dir, tmp_path):
    """The editor, driven as a person would: select the second segment, label its thought
    `hallucinated`, pick `accept`, press Submit; pull reads it back."""
    project_id = find_project(conn, f"vstw {run_dir.name}")
    task = next(t for t in tasks_by_chain(conn, project_id).values() if t.total_annotations == 0)
    video_ready = "(() => { const v = document.querySelector('video'); return !!v && v.readyState >= 2; })()"
    second = task.data["segments"][1]["text"]
    shown = f"document.body.innerText.includes({json.dumps(second)})"
    with logged_in(ls["info"].url, ls["creds"].username, ls["creds"].password, timeout=120) as driver:
        driver.get(f"{ls['info'].url}/projects/{project_id}/data?task={task.id}")
        assert wait_for(driver, video_ready, 120)
        assert not driver.execute_script(f"return {shown}")  # shown on selection only
        regions = driver.find_elements(By.CSS_SELECTOR, ".lsf-tree__node_type_timelineregion")
        assert len(regions) == len(task.data["segments"])
        regions[1].click()
        assert wait_for(driver, shown, 30), "the selected segment's thought is not shown"
        for name in ("hallucinated", "accept"):
            click(driver, driver.find_element(By.CSS_SELECTOR, f"input[name={name}]"))
            # the editor redraws the control on a click: ask the page, not the clicked element
            assert wait_for(driver, f"document.querySelector('input[name={name}]').checked", 10), f"{name} is not checked"
        click(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Submit']"))
        assert wait_for(driver, "document.body.innerText.includes('Annotation saved successfully')", 60)
        capture(driver, tmp_path, "submitted")
    pull_reviews(conn, run_dir)
    row = next(r for r in run_dir.read_rows("reviews") if r["task_id"] == task.id)
    assert (row["status"], row["decision"], row["corrections"]) == ("ok", "accept", None)
    assert row["reviewer"] == ls["creds"].username
    assert row["labels"] == ["", "hallucinated"] + [""] * (len(task.data["segments"]) - 2)
    assert (tmp_path / "submitted.png").stat().st_size > 20_000
