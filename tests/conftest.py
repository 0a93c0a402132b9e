"""Shared fixtures: the project root, the sample data, and a helper to run recipes into tmp folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never reach a model hub; everything they load is built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VSTW_PROGRESS", "0")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def samples(project_root) -> Path:
    """The sample data (idempotent: `make samples` usually made it already)."""
    from pipelines.samples import make_samples

    return make_samples(project_root)


@pytest.fixture
def run_recipe_dict(tmp_path, project_root):
    """Run a recipe given as a dict into tmp_path/runs/<run>; returns the RunDir."""
    from pipelines.recipe import parse_recipe
    from pipelines.rundir import RunDir
    from pipelines.run import run_recipe

    def _run(data: dict, run: str = "t", root: Path | None = None) -> RunDir:
        recipe = parse_recipe(data)
        run_recipe(recipe, run, root or project_root, tmp_path / "runs", progress=False, echo=lambda *_: None)
        return RunDir(tmp_path / "runs" / run)

    return _run


# ---- Label Studio: started once per session (test_bind checks its sockets, test_review uses it)
@pytest.fixture(scope="session")
def ls_starting(tmp_path_factory):
    """`vstw review serve` launched in the background: Label Studio's first start (migrations)
    takes long on a busy machine, so other work is done meanwhile (test_review: the demo run)."""
    import subprocess
    import sys

    from annotation import server

    project = tmp_path_factory.mktemp("ls-project")
    (project / "data").mkdir()
    env = {**os.environ, "VSTW_HOME": str(project), "VSTW_PROGRESS": "0"}
    env.pop("VSTW_LS_TOKEN", None)
    port = server.free_port()
    log = open(project / "serve.out", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "review", "serve", "--port", str(port), "--document-root", str(ROOT / "data")],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield {"proc": proc, "project": project, "env": env, "port": port, "log": log}
    # Whatever happened above, leave no server behind (a no-op once `label_studio` stopped it).
    if proc.poll() is None:
        proc.wait(timeout=900)
    server.stop(server.home_dir(project))
    log.close()


@pytest.fixture(scope="session")
def label_studio(ls_starting):
    """A real Label Studio on a free port, started with `vstw review serve`, stopped with --stop
    (`serve` creates .venv-ls first when it is missing: a few minutes, once per machine)."""
    import subprocess
    import sys

    from annotation import server

    proc, env, port = ls_starting["proc"], ls_starting["env"], ls_starting["port"]
    home = server.home_dir(ls_starting["project"])
    code = proc.wait(timeout=900)
    ls_starting["log"].seek(0)
    assert code == 0, ls_starting["log"].read() + server._log_tail(home / "label-studio.log", 40)
    info = server.status(home)
    assert info is not None and info.port == port and info.url == f"http://127.0.0.1:{port}"
    yield {"home": home, "info": info, "creds": server.load_credentials(home), "env": env}
    stopped = subprocess.run([sys.executable, "-m", "pipelines.cli", "review", "serve", "--stop"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not server._alive(info.pid)
    assert server.status(home) is None
