"""Nothing lost, nothing half-done: crashes, kills and failed stages leave a consistent workspace.

The subprocess tests (kill -9 and resume, SIGTERM) are slow and part of the reliability suite.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkout import REPO, run_stage, stage_command, stage_env
from rnnlab import tracking as rnnlab_tracking
from rnnlab.errors import DataError
from rnnlab.io import read_json, write_json
from rnnlab.paths import RunPaths
from rnnlab.recovery import (
    HOST_TAG,
    PROCESS_TAG,
    exit_on_signals,
    process_tags,
    remove_orphaned_temp,
    signals_at_safe_points,
)
from rnnlab.stages.evaluate import run_evaluate
from rnnlab.stages.prepare import run_prepare
from rnnlab.stages.train import run_train


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_runs_of_dead_processes_are_closed_as_killed_on_start(tracking):
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    experiment = rnnlab_tracking.ensure_experiment(tracking, "rnnlab-test")
    host = socket.gethostname()
    gone = {HOST_TAG: host, PROCESS_TAG: f"{dead_pid()}:1.00"}
    orphan = client.create_run(experiment, tags=gone).info.run_id
    parent = client.create_run(experiment, tags={**gone, rnnlab_tracking.KIND_TAG: "sweep"})
    alive = client.create_run(experiment, tags=process_tags()).info.run_id
    elsewhere = client.create_run(experiment, tags={**gone, HOST_TAG: "another-host"})
    rnnlab_tracking.ensure_experiment(tracking, "rnnlab-test")  # what every start calls
    status = {r: client.get_run(r).info.status for r in (orphan, parent.info.run_id)}
    assert status == {orphan: "KILLED", parent.info.run_id: "KILLED"}
    assert "no longer exists" in client.get_run(orphan).data.tags["rnnlab.note"]
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"


def test_a_signal_during_training_waits_for_a_safe_point_and_a_second_one_does_not():
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    exit_on_signals()
    try:
        reached = []
        with pytest.raises(SystemExit) as stopped, signals_at_safe_points():
            os.kill(os.getpid(), signal.SIGTERM)
            reached.append("after the signal")  # e.g. the MLflow write it arrived in
        assert reached == ["after the signal"]
        assert stopped.value.code == 143

        with pytest.raises(SystemExit) as stopped, signals_at_safe_points():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after two signals")
        assert reached == ["after the signal"]
        assert stopped.value.code == 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_run_created_twice_by_a_retried_request_leaves_one_run(tracking):
    """The HTTP client retries a create whose answer a restarting server never sent."""
    from mlflow import MlflowClient

    class RetriedCreate(MlflowClient):
        def create_run(self, *args, **kwargs):
            super().create_run(*args, **kwargs)  # committed, but the answer was lost
            return super().create_run(*args, **kwargs)

    client = RetriedCreate(tracking)
    experiment = rnnlab_tracking.ensure_experiment(tracking, "rnnlab-test")
    run = rnnlab_tracking.create_run_once(client, experiment, "job", {"task": "forecast"})
    (left,) = client.search_runs([experiment])
    assert left.info.run_id == run.info.run_id and left.data.tags["task"] == "forecast"


def test_temp_folders_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f".models.tmp-{dead_pid()}-abc"
    mine = tmp_path / f".models.tmp-{os.getpid()}-def"
    stray_file = tmp_path / f".test.json.tmp-{dead_pid()}-x"
    for folder in (dead, mine):
        folder.mkdir()
    stray_file.write_text("{")
    (tmp_path / "models").mkdir()
    remove_orphaned_temp([tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "models"])


@pytest.mark.parametrize("tool", ["git", "dvc"])
def test_temp_folders_and_run_state_are_ignored(tool):
    paths = ["data/.raw.tmp-123-x", ".models.tmp-1-y", "metrics/.test.json.tmp-2-z"]
    if tool == "git":
        paths.append(".rnnlab/resume/last.ckpt")
    program = tool if tool == "git" else str(Path(sys.executable).with_name("dvc"))  # the venv's
    found = subprocess.run(
        [program, "check-ignore", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert found.stdout.split() == paths


@pytest.fixture
def trained(tmp_path, quick_cfg, tracking):
    """A quick forecasting run through the stages, with its MLflow run (no logged model)."""
    cfg = quick_cfg(
        "trainer.max_epochs=2", "trainer.grad_flow_batches=0", logger={"log_model": False}
    )
    paths = RunPaths(tmp_path / "job")
    run_prepare(cfg, paths)
    summary = run_train(cfg, paths)
    run_evaluate(cfg, paths)
    return cfg, paths, summary["mlflow_run_id"]


def test_model_folder_holds_weights_only_and_checkpoints_are_gone(trained):
    _, paths, _ = trained
    assert sorted(p.name for p in paths.model_dir.iterdir()) == [
        "config.yaml",
        "history.csv",
        "model.pt",
        "model_meta.json",
    ]
    assert not paths.resume_dir.exists()
    assert "seconds" not in (paths.model_dir / "history.csv").read_text()
    assert "train_seconds" not in read_json(paths.metrics_dir / "train.json")


def test_a_new_model_removes_the_results_of_the_old_one(trained, monkeypatch):
    cfg, paths, _ = trained
    from rnnlab.tasks import forecast

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation crashed")

    run_train(cfg, paths)  # a new model: the old model's test results must go with it
    assert not (paths.metrics_dir / "test.json").exists()
    assert not (paths.plots_dir / "evaluate").exists()
    assert (paths.metrics_dir / "train.json").exists()
    monkeypatch.setattr(forecast.ForecastTask, "evaluate", broken)
    with pytest.raises(RuntimeError):
        run_evaluate(cfg, paths)
    assert not (paths.metrics_dir / "test.json").exists()


def test_failed_evaluation_marks_the_run_failed(trained, monkeypatch):
    from mlflow import MlflowClient

    cfg, paths, run_id = trained
    client = MlflowClient(rnnlab_tracking.tracking_uri())
    assert client.get_run(run_id).info.status == "FINISHED"
    from rnnlab.tasks import forecast

    with monkeypatch.context() as patched, pytest.raises(ZeroDivisionError):
        patched.setattr(forecast.ForecastTask, "evaluate", lambda *a: 1 / 0)
        run_evaluate(cfg, paths)
    assert client.get_run(run_id).info.status == "FAILED"
    run_evaluate(cfg, paths)
    assert client.get_run(run_id).info.status == "FINISHED"


def test_evaluate_refuses_a_model_its_run_did_not_train(trained):
    cfg, paths, run_id = trained
    record = read_json(paths.run_info)
    write_json(paths.run_info, {**record, "model_sha256": hashlib.sha256(b"other").hexdigest()})
    before = (paths.metrics_dir / "test.json").read_bytes()
    with pytest.raises(DataError, match=f"another model than the one MLflow run {run_id}"):
        run_evaluate(cfg, paths)
    assert (paths.metrics_dir / "test.json").read_bytes() == before


# ------------------------------------------------------------------ subprocess: kills, signals


def stage_repo(tmp_path: Path, overrides: list[str]) -> Path:
    """A directory that the stage scripts run in: params.yaml for ``overrides``, prepared."""
    from rnnlab.config import dump_params

    root = tmp_path / "repo"
    root.mkdir()
    (root / "dvc.yaml").write_text("stages: {}\n")
    (root / "params.yaml").write_text(dump_params(overrides))
    run_stage(root, "prepare")
    return root


def outputs(root: Path) -> dict[str, str]:
    files = [*sorted((root / "models").iterdir()), root / "metrics" / "train.json"]
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def start_training_until(root: Path, line: str) -> subprocess.Popen:
    """Start the train stage; return once its log shows ``line`` (it is then mid-epoch)."""
    log = (root / "train.log").open("w")
    process = subprocess.Popen(
        stage_command("train"),
        cwd=root,
        env=stage_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while line not in (root / "train.log").read_text():
        assert process.poll() is None, (root / "train.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process


SMALL_RUN = [
    "experiment=quick",
    "task.lookback=52",
    "task.horizon=8",
    "trainer.max_epochs=4",
    "trainer.num_threads=1",
    "trainer.grad_flow_batches=1",
    "logger.log_model=false",
]


@pytest.mark.slow
@pytest.mark.reliability
def test_kill_9_mid_epoch_then_resume_ends_byte_identical(tmp_path):
    root = stage_repo(tmp_path, SMALL_RUN)
    assert run_stage(root, "train").returncode == 0
    uninterrupted = outputs(root)
    process = start_training_until(root, "epoch   2/4")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (root / ".rnnlab" / "resume" / "checkpoints" / "last.ckpt").exists()
    resumed = run_stage(root, "train")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming training from" in resumed.stdout
    assert "epoch   1/4" not in resumed.stdout
    assert outputs(root) == uninterrupted
    assert not (root / ".rnnlab" / "resume").exists()
    assert not list(root.glob(".models.tmp-*"))

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    continued = read_json(root / ".rnnlab" / "run.json")["run_id"]
    # One run holds the whole curve (an epoch cut short may log its validation twice).
    assert len({m.step for m in client.get_metric_history(continued, "val/loss")}) == 4


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_training_non_zero_and_marks_the_run_killed(tmp_path, signum, code):
    root = stage_repo(tmp_path, [*SMALL_RUN, "trainer.max_epochs=50"])
    process = start_training_until(root, "epoch   1/50")
    process.send_signal(signum)
    assert process.wait(timeout=120) == code, (root / "train.log").read_text()[-3000:]
    assert not (root / "models").exists()
    assert not list(root.glob(".models.tmp-*"))
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["KILLED"]
