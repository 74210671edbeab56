"""Concurrent starts: single runs started at the same moment on a repository without an MLflow
store all finish (the store is created under a file lock, see ``tracking.ensure_experiment``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.reliability
def test_four_single_runs_started_at_once_all_finish(tmp_path):
    from mlflow import MlflowClient

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # the repository root: mlflow.db here
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    runs = [
        subprocess.Popen(
            [
                sys.executable, "-m", "rnnlab.app", "experiment=quick", "task.lookback=52",
                "task.horizon=8", "trainer.max_epochs=1", "trainer.grad_flow_batches=0",
                "trainer.num_threads=1", "logger.log_model=false", f"hydra.run.dir=job{i}",
            ],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]  # fmt: skip
    errors = [run.communicate(timeout=900)[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, "\n".join(e[-1500:] for e in errors)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    finished = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in finished) == ["FINISHED"] * 4
