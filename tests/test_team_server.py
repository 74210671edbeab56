"""A real team server on loopback: PostgreSQL + `mlflow server` with the artifact proxy (slow).

A 4-job parallel sweep logs to it while the MLflow server is restarted underneath (clients
retry through MLflow's HTTP retries); then a promotion, and `mlflow models serve` of the
champion, all through MLFLOW_TRACKING_URI alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus

from rnnlab.registry import promote
from rnnlab.server import TeamServer, running, stop
from rnnlab.tracking import KIND_TAG
from test_serving import _free_port, _wait_for_ping, frame_body, post

pytestmark = pytest.mark.slow

SWEEP = [
    "experiment=parallel",  # joblib, 2 jobs side by side
    "trainer=fast",
    "trainer.num_threads=1",
    "task.lookback=52",
    "task.horizon=8",
    "model.num_layers=1",
    "model.hidden_size=8,16",
    "trainer.optimizer.lr=0.001,0.003",
]
JOBS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[TeamServer, subprocess.Popen]]:
    # Not under pytest's tmp_path: PostgreSQL runs as the `postgres` user when we are root,
    # and pytest's folders are private to us.
    root = Path(tempfile.mkdtemp(prefix="rnnlab-server-"))
    root.chmod(0o755)
    team = TeamServer(root, port=_free_port(), pg_port=_free_port())
    try:
        with running(team) as process:
            yield team, process
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _runs(client: MlflowClient, status: str | None = None) -> list:
    """Every (not deleted) run of the experiment: the sweep's parent and its jobs."""
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    if experiment is None:
        return []
    query = "" if status is None else f"attributes.status = '{status}'"
    return client.search_runs([experiment.experiment_id], query)


def _training_runs(client: MlflowClient, status: str | None = None) -> list:
    return [r for r in _runs(client, status) if r.data.tags.get(KIND_TAG) != "sweep"]


def test_sweep_survives_a_server_restart_then_promote_and_serve(server, tmp_path: Path) -> None:
    team, process = server
    client = MlflowClient(team.tracking_uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": team.tracking_uri, "OMP_NUM_THREADS": "1"}
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "rnnlab.app", "-m", *SWEEP, f"hydra.sweep.dir={sweep_dir}"]
    log = (tmp_path / "sweep.log").open("w")
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)

    # Restart the MLflow server once the first job has finished and others are still to come.
    deadline = time.monotonic() + 1200
    while not _training_runs(client, "FINISHED") and sweep.poll() is None:
        assert time.monotonic() < deadline, "no job finished in time"
        time.sleep(2)
    assert sweep.poll() is None, "the sweep ended before the restart could happen"
    stop(process)
    time.sleep(5)  # clients meet a closed port meanwhile
    restarted = team.start_mlflow()
    try:
        assert sweep.wait(timeout=1800) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
        jobs = _check_everything_arrived(client, team)

        # Promotion and serving, through the server only.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", team.tracking_uri)
            done = promote("rnnlab-forecast", uri=team.tracking_uri)
        champion = client.get_model_version_by_alias("rnnlab-forecast", "champion")
        assert champion.run_id == done.run_id and champion.run_id in jobs
        assert done.candidates == JOBS
        _serve_and_predict(env, tmp_path, sweep_dir)
    finally:
        stop(restarted)


def _check_everything_arrived(client: MlflowClient, team: TeamServer) -> set[str]:
    """Exactly JOBS finished jobs under one finished parent, each with all it logs; their ids."""
    everything = _runs(client)
    assert not [r.info.run_id for r in everything if r.info.status != "FINISHED"]
    (parent,) = [r for r in everything if r.data.tags.get(KIND_TAG) == "sweep"]
    runs = _training_runs(client)
    assert len(runs) == JOBS  # none lost, no twin from a retried create
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.data.tags["failed_jobs"] == "0"
    assert any(
        a.path.startswith("report/") for a in client.list_artifacts(parent.info.run_id, "report")
    )
    jobs = {r.info.run_id for r in runs}
    models = client.search_logged_models([parent.info.experiment_id])
    assert sorted(m.source_run_id for m in models) == sorted(jobs)  # one model each
    assert {m.status for m in models} == {LoggedModelStatus.READY}
    for run in runs:
        metrics = run.data.metrics
        assert {"test/model/mase", "train/best_val_loss", "train/epochs"} <= set(metrics)
        history = client.get_metric_history(run.info.run_id, "val/loss")
        assert len(history) == metrics["train/epochs"] == 2  # every epoch, none lost
        logged = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/learning_curve.csv" in logged
    default = client.get_experiment_by_name("Default")
    assert default is None or not client.search_runs([default.experiment_id])
    # The artifact proxy wrote them into the server's own store.
    assert len(list(team.artifacts.rglob("learning_curve.csv"))) == JOBS
    return jobs


def _serve_and_predict(env: dict, tmp_path: Path, sweep_dir: Path) -> None:
    import pandas as pd

    port = _free_port()
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
    command = ["mlflow", "models", "serve", "-m", "models:/rnnlab-forecast@champion"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        served = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_ping(f"http://127.0.0.1:{port}/ping", served, log_path)
        raw = pd.read_csv(next(sweep_dir.glob("**/data/raw/co2.csv")))
        history = raw[["co2"]].interpolate().iloc[-100:]
        status, body = post(f"http://127.0.0.1:{port}/invocations", frame_body(history))
        assert status == 200 and len(body["predictions"]) == 8, body
    finally:
        stop(served)
