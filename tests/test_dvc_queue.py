"""`dvc exp run --queue` + `dvc queue start` on a temporary copy of the repository (slow).

Queued experiments run in copies under `.dvc/tmp/exps/`; their MLflow runs must still land in
the repository root's mlflow.db (rnnlab.paths.repo_root honours DVC_ROOT).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from test_dvc_pipeline import _sh, repo_copy  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow


def test_queued_sweep_lands_in_dvc_and_in_the_root_mlflow_db(
    repo_copy: Path,  # noqa: F811
    quick_overrides: list[str],
) -> None:
    quick = [*quick_overrides, "logger.log_model=false"]
    settings = [arg for override in quick for arg in ("-S", override)]
    _sh(["dvc", "exp", "run", "--queue", "-S", "model=rnn,lstm,gru", *settings], repo_copy)
    _sh(["dvc", "queue", "start", "-j", "1"], repo_copy)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = _sh(["dvc", "queue", "status"], repo_copy).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 3, status

    shown = json.loads(_sh(["dvc", "exp", "show", "--json"], repo_copy).stdout)
    names = {
        exp["name"]
        for rev in shown
        for exp_range in rev.get("experiments") or []
        for exp in exp_range["revs"]
    }
    assert len(names) == 3, names

    client = MlflowClient(f"sqlite:///{repo_copy / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    runs = client.search_runs([experiment.experiment_id], "tags.dvc_exp_name != ''")
    assert {r.data.tags["dvc_exp_name"] for r in runs} == names
    assert sorted(r.data.tags["model"] for r in runs) == ["gru", "lstm", "rnn"]
    assert all("test/model/mase" in r.data.metrics for r in runs)
    assert not list((repo_copy / ".dvc" / "tmp" / "exps").rglob("mlflow.db"))
