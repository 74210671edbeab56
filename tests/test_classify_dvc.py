"""`dvc exp run -S task=classify -S data=japanese_vowels` on a temporary copy of the repository.

Also checks that `dvc plots show` works after a forecast run (no confusion matrix file yet) and
after a classify run (no forecast file any more): a plot whose file is absent must not break it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from test_dvc_pipeline import _sh, repo_copy  # noqa: F401  (the fixture is used by name)

pytestmark = pytest.mark.slow


def _plots_show(repo: Path, out: str) -> str:
    _sh(["dvc", "plots", "show", "-o", out], repo)
    return (repo / out / "index.html").read_text(encoding="utf-8")


def test_exp_run_classify_vowels_and_plots_show_for_both_tasks(repo_copy: Path) -> None:  # noqa: F811
    _sh(["dvc", "repro"], repo_copy)
    assert not (repo_copy / "plots/evaluate/confusion.csv").exists()
    assert "Test_forecast_against_actuals" in _plots_show(repo_copy, "html_forecast")

    exp = _sh(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "task=classify",
            "-S",
            "data=japanese_vowels",
            "-S",
            "experiment=quick",
        ],
        repo_copy,
    )
    for stage in ("prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in exp.stdout
    metrics = json.loads((repo_copy / "metrics/test.json").read_text())["test"]
    assert {"model", "majority", "logistic", "per_class"} <= set(metrics)
    assert metrics["logistic"]["accuracy"] > 0.9
    assert (repo_copy / "data/raw/test.csv").exists()
    assert (repo_copy / "plots/evaluate/confusion.png").exists()
    assert not (repo_copy / "plots/evaluate/forecast.csv").exists()
    html = _plots_show(repo_copy, "html_classify")
    assert "Test_confusion_matrix" in html

    shown = _sh(["dvc", "metrics", "show"], repo_copy).stdout
    assert "test.logistic.accuracy" in shown
    client = MlflowClient(f"sqlite:///{repo_copy / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnlab-classify")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and "test/model/accuracy" in runs[0].data.metrics
