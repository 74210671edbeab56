"""`dvc repro` and `dvc exp run` on a temporary copy of this repository (slow: real stages)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from checkout import copy_checkout
from rnnlab.config import dump_params
from rnnlab.paths import RunPaths

pytestmark = pytest.mark.slow


def _sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DVC_ROOT", None)
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory, quick_overrides: list[str]) -> Path:
    """The tracked and new files of this checkout, committed in a fresh git repository."""
    dest = copy_checkout(tmp_path_factory.mktemp("repo"))
    for name in ("data/raw", "data/prepared", "models", "metrics", "plots"):
        shutil.rmtree(dest / name, ignore_errors=True)
    (dest / "params.yaml").write_text(dump_params(quick_overrides))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        _sh(cmd, dest)
    return dest


def test_repro_then_noop_then_model_change_reruns_train_and_evaluate_only(repo_copy: Path) -> None:
    first = _sh(["dvc", "repro"], repo_copy)
    for stage in ("prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((repo_copy / "metrics/test.json").read_text())
    assert metrics["test"]["model"]["mase"] > 0
    assert (repo_copy / "plots/evaluate/forecast.png").exists()
    assert (repo_copy / "data/raw/co2.csv").exists()

    # MLflow lands at the repository root, one finished run with test metrics.
    client = MlflowClient(f"sqlite:///{repo_copy / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rnnlab-forecast").experiment_id])
    assert len(runs) == 1 and "test/model/mase" in runs[0].data.metrics

    again = _sh(["dvc", "repro"], repo_copy)
    assert "Data and pipelines are up to date" in again.stdout

    exp = _sh(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "experiment=quick",
            "-S",
            "task.lookback=52",
            "-S",
            "task.horizon=8",
            "-S",
            "model.hidden_size=12",
        ],
        repo_copy,
    )
    assert "Stage 'prepare' didn't change" in exp.stdout
    assert "Running stage 'train'" in exp.stdout and "Running stage 'evaluate'" in exp.stdout

    shown = json.loads(_sh(["dvc", "metrics", "show", "--json"], repo_copy).stdout)
    assert "metrics/test.json" in json.dumps(shown)
    diff = _sh(["dvc", "params", "diff"], repo_copy).stdout
    assert "model.hidden_size" in diff
    _sh(["dvc", "plots", "show", "-o", "plots_html"], repo_copy)
    page = (repo_copy / "plots_html/index.html").read_text()
    assert "Learning_curve" in page and "Test_forecast_against_actuals" in page


def test_exp_run_switches_model_group(repo_copy: Path) -> None:
    _sh(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "model=gru",
            "-S",
            "experiment=quick",
            "-S",
            "task.lookback=52",
            "-S",
            "task.horizon=8",
        ],
        repo_copy,
    )
    assert "arch: gru" in (repo_copy / "params.yaml").read_text()
    assert "arch: gru" in (repo_copy / "models/config.yaml").read_text()


def test_bad_input_fails_clearly_and_keeps_previous_outputs(
    repo_copy: Path, quick_overrides: list[str]
) -> None:
    meta = (repo_copy / "data/prepared/meta.json").read_bytes()
    model = (repo_copy / "models/model.pt").read_bytes()
    bad = repo_copy / "data/external/bad.csv"
    bad.write_text("date,value,promo\n2024-01-01,1.0,0\n2024-01-02,oops,1\n")
    (repo_copy / "params.yaml").write_text(
        dump_params([*quick_overrides, "data=csv", "data.path=data/external/bad.csv"])
    )
    failed = _sh(["dvc", "repro"], repo_copy, check=False)
    assert failed.returncode != 0
    assert "Column `value`" in failed.stderr and "not numeric" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert (repo_copy / "data/prepared/meta.json").read_bytes() == meta
    assert (repo_copy / "models/model.pt").read_bytes() == model


def _exp_run(repo: Path, overrides: list[str]) -> str:
    return _sh(["dvc", "exp", "run", *(f"-S{o}" for o in overrides)], repo).stdout


def test_an_evaluation_setting_reruns_evaluate_only(repo_copy: Path) -> None:
    lm = ["experiment=quick", "task=lm", "data=pydoc_topics", "data.max_chars=20000"]
    lm += ["trainer.batch_size=8", "task.bptt=32"]
    _exp_run(repo_copy, [*lm, "evaluate.sample_length=20"])
    out = _exp_run(repo_copy, [*lm, "evaluate.sample_length=20", "evaluate.temperature=0.5"])
    assert "Stage 'prepare' didn't change" in out and "Stage 'train' didn't change" in out
    assert "Running stage 'evaluate'" in out
    # evaluate read the new value from params.yaml, not the config saved with the model
    run_id = json.loads(RunPaths(repo_copy).run_info.read_text())["run_id"]
    run = MlflowClient(f"sqlite:///{repo_copy / 'mlflow.db'}").get_run(run_id)
    assert run.data.tags["evaluate.temperature"] == "0.5"
    assert "temperature 0.5" in (repo_copy / "params.yaml").read_text().replace(":", "")


def test_editing_data_code_reruns_the_stages_that_import_it(
    repo_copy: Path, quick_overrides: list[str]
) -> None:
    (repo_copy / "params.yaml").write_text(dump_params(quick_overrides))
    _sh(["dvc", "repro"], repo_copy)
    with (repo_copy / "src/rnnlab/data/preprocessing.py").open("a") as code:
        code.write("\n\ndef _edited() -> None:\n    return None\n")
    out = _sh(["dvc", "repro"], repo_copy).stdout
    for stage in ("prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in out
