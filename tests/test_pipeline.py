"""End to end through the real entry points: the stage functions, the Hydra app, MLflow."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from rnnlab.data.forecast import load_prepared
from rnnlab.errors import TrainingError
from rnnlab.io import read_json
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from rnnlab.stages.prepare import run_prepare
from rnnlab.stages.train import run_train

REPO = Path(__file__).resolve().parents[1]


def test_pipeline_logs_one_complete_mlflow_run(tmp_path: Path, tracking: str, quick_cfg) -> None:
    cfg = quick_cfg()
    paths = RunPaths(tmp_path / "job")
    result = run_pipeline(cfg, paths)

    run_id = result["train"]["mlflow_run_id"]
    run = MlflowClient(tracking).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.arch"] == cfg.model.arch == "gru"  # segrnn, the default
    assert run.data.params["task.horizon"] == "8"
    assert "trainer" not in run.data.params  # flattened, not the nested config
    assert run.data.tags["data_sha256"] == read_json(paths.prepared_dir / "meta.json")["raw_sha256"]
    assert run.data.tags["mlflow.source.git.commit"]
    for key in ("train/loss", "val/loss", "test/model/mase", "test/seasonal_naive/mase"):
        assert key in run.data.metrics, key
    history = MlflowClient(tracking).get_metric_history(run_id, "val/loss")
    assert len(history) == result["train"]["epochs"] == 2  # one point per epoch
    artifacts = {a.path for a in MlflowClient(tracking).list_artifacts(run_id, "plots")}
    assert {"plots/forecast.png", "plots/learning_curve.csv"} <= artifacts
    assert MlflowClient(tracking).list_artifacts(run_id, "config")
    assert (paths.plots_dir / "evaluate/forecast.png").stat().st_size > 10_000
    assert json.loads((paths.metrics_dir / "test.json").read_text())["test"]["model"]["mase"] > 0


def test_training_ends_its_run_and_leaves_mlflow_process_state_alone(
    tmp_path: Path, quick_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train ends its run FINISHED itself, after its last logging (not when the model is
    logged), and leaves no process-wide MLflow state behind: no tracking URI (which MLflow also
    exports to child processes) and no active run, so later MLflow calls in the same process
    (a notebook, another run) talk to their own store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    uri = f"sqlite:///{tmp_path / 'own.db'}"
    cfg, paths = quick_cfg(f"logger.tracking_uri={uri}"), RunPaths(tmp_path / "job")
    run_prepare(cfg, paths)
    result = run_train(cfg, paths)
    assert not mlflow.is_tracking_uri_set() and mlflow.active_run() is None
    run = MlflowClient(uri).get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and "train/best_val_loss" in run.data.metrics
    assert MlflowClient(uri).search_logged_models([run.info.experiment_id])  # the model is there

    # Told through the environment: the variable stays as it was, and no setting left behind
    # shadows its next value (MLflow's setter also writes the variable).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_train(quick_cfg(), paths)
    assert os.environ["MLFLOW_TRACKING_URI"] == uri
    later = f"sqlite:///{tmp_path / 'later.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", later)
    assert mlflow.get_tracking_uri() == later


def test_logged_mlflow_model_reloads_and_predicts_the_same(
    tmp_path: Path, tracking: str, quick_cfg
) -> None:
    cfg = quick_cfg()
    paths = RunPaths(tmp_path)
    run_id = run_pipeline(cfg, paths)["train"]["mlflow_run_id"]
    series = load_prepared(paths.prepared_dir)
    history = series.scaler.inverse(series.values.astype(np.float64))[:, 0]  # original scale
    first_test_origin = series.bounds.test_start  # evaluate's first test window ends here
    recent = pd.DataFrame({"co2": history[first_test_origin - 52 : first_test_origin]})

    mlflow.set_tracking_uri(tracking)
    reloaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    predicted = reloaded.predict(recent)
    assert list(predicted.columns) == ["step", "co2"] and len(predicted) == 8
    evaluated = pd.read_csv(paths.plots_dir / "evaluate/forecast.csv").iloc[:8]
    np.testing.assert_allclose(predicted["co2"], evaluated["forecast"], rtol=1e-6)
    assert abs(predicted["co2"] - evaluated["actual"]).mean() < 5  # ppm: a real forecast
    # Raw input is checked: too short a history is refused with the reason.
    with pytest.raises(Exception, match="needs the last 52"):
        reloaded.predict(recent.iloc[:10])

    # The model carries its own rnnlab code: it loads and predicts the same numbers in a
    # process where the project's source is not importable (rnnlab is not on PyPI).
    recent.to_csv(tmp_path / "recent.csv", index=False)
    script = f"""
import sys
sys.path = [p for p in sys.path if p != {str(REPO / "src")!r}]
import mlflow, pandas as pd
mlflow.set_tracking_uri({tracking!r})
model = mlflow.pyfunc.load_model("runs:/{run_id}/model")
import rnnlab
assert "/code/rnnlab/" in rnnlab.__file__, rnnlab.__file__
print(model.predict(pd.read_csv({str(tmp_path / "recent.csv")!r}))["co2"].to_json())
"""
    elsewhere = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
    np.testing.assert_allclose(
        pd.read_json(io.StringIO(elsewhere.stdout), typ="series"), predicted["co2"]
    )
    model_files = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model")
    requirements = (Path(model_files) / "requirements.txt").read_text().split()
    assert requirements[0] == f"torch=={torch.__version__.split('+')[0]}"
    assert "rnnlab" not in requirements and any(r.startswith("pandas") for r in requirements)


def test_divergence_stops_with_advice_and_keeps_the_previous_model(
    tmp_path: Path, tracking: str, quick_cfg
) -> None:
    paths = RunPaths(tmp_path)
    run_pipeline(quick_cfg(), paths)
    before = (paths.model_dir / "model.pt").read_bytes()

    exploding = quick_cfg(
        "trainer.optimizer.name=sgd", "trainer.optimizer.lr=1e12", "trainer.gradient_clip_val=null"
    )
    with pytest.raises(TrainingError, match=r"(?s)diverged.*learning rate.*clipping"):
        run_train(exploding, paths)
    assert (paths.model_dir / "model.pt").read_bytes() == before
    runs = MlflowClient(tracking).search_runs(
        [MlflowClient(tracking).get_experiment_by_name("rnnlab-forecast").experiment_id]
    )
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def test_hydra_multirun_logs_one_run_per_variant_in_one_experiment(
    tmp_path: Path, tracking: str, quick_overrides: list[str]
) -> None:
    variants = ["rnn", "lstm_attn", "mlp"]
    cmd = [
        sys.executable,
        "-m",
        "rnnlab.app",
        "-m",
        f"model={','.join(variants)}",
        *quick_overrides,
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    everything = client.search_runs([experiment.experiment_id])
    runs = [r for r in everything if "task" in r.data.tags]  # trainings, not the sweep parent
    assert sorted(r.data.tags["model"] for r in runs) == sorted(variants)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all("test/model/mase" in r.data.metrics for r in runs)
    (parent,) = [r for r in everything if "task" not in r.data.tags]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
