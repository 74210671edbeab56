"""Cluster launchers: a sweep through hydra-submitit-launcher (`submitit_local` here, the same
code path as `hydra/launcher=slurm` minus sbatch) lands in MLflow like any sweep (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient

from rnnlab.config import CONF_DIR

pytestmark = pytest.mark.slow


def test_slurm_launcher_carries_the_resources_of_the_config() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(
            "config",
            ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.cpus_per_task, launcher.mem_gb) == ("gpu", 4, 16)
    assert launcher.timeout_min == 120 and launcher.gpus_per_node == 0


def test_submitit_sweep_jobs_are_child_runs_with_the_tasks_cpus(
    tmp_path: Path, quick_overrides: list[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [
        sys.executable, "-m", "rnnlab.app", "-m", *quick_overrides, "model.hidden_size=8,16",
        "hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=20", "logger.log_model=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    runs = client.search_runs([experiment.experiment_id])
    trainings = [r for r in runs if "task" in r.data.tags]
    assert sorted(r.data.params["model.hidden_size"] for r in trainings) == ["16", "8"]
    assert all(r.info.status == "FINISHED" for r in trainings)
    assert all(r.data.params["torch_threads"] == "1" for r in trainings)  # cpus_per_task
    assert len({r.data.tags["mlflow.parentRunId"] for r in trainings}) == 1
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 2
