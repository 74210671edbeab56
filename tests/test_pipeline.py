"""End to end through the real entry points: the stage functions, the Hydra app, MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from rnnlab.config import compose, validate
from rnnlab.errors import TrainingError
from rnnlab.io import read_json
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from rnnlab.stages.evaluate import load_trained
from rnnlab.stages.train import run_train

REPO = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quick", "task.lookback=52", "task.horizon=8"]


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_pipeline_logs_one_complete_mlflow_run(tmp_path: Path, tracking: str) -> None:
    cfg = validate(compose(QUICK))
    paths = RunPaths(tmp_path / "job")
    result = run_pipeline(cfg, paths)

    run_id = result["train"]["mlflow_run_id"]
    run = MlflowClient(tracking).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.arch"] == "lstm"
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
    assert (paths.plots_dir / "forecast.png").stat().st_size > 10_000
    assert json.loads((paths.metrics_dir / "test.json").read_text())["test"]["model"]["mase"] > 0


def test_logged_mlflow_model_reloads_and_predicts_the_same(tmp_path: Path, tracking: str) -> None:
    cfg = validate(compose(QUICK))
    paths = RunPaths(tmp_path)
    run_id = run_pipeline(cfg, paths)["train"]["mlflow_run_id"]
    _, model = load_trained(paths)
    x = np.random.default_rng(0).normal(size=(5, 52, 1)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()

    mlflow.set_tracking_uri(tracking)
    reloaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    np.testing.assert_allclose(reloaded.predict(x), expected, rtol=1e-6, atol=1e-6)
    # The sequence length is not frozen: a longer history works too.
    longer = np.random.default_rng(1).normal(size=(2, 80, 1)).astype(np.float32)
    assert reloaded.predict(longer).shape == (2, 8, 1)


def test_divergence_stops_with_advice_and_keeps_the_previous_model(
    tmp_path: Path, tracking: str
) -> None:
    paths = RunPaths(tmp_path)
    run_pipeline(validate(compose(QUICK)), paths)
    before = (paths.model_dir / "model.pt").read_bytes()

    exploding = [
        *QUICK,
        "trainer.optimizer.name=sgd",
        "trainer.optimizer.lr=1e12",
        "trainer.gradient_clip_val=null",
    ]
    with pytest.raises(TrainingError, match=r"(?s)diverged.*learning rate.*clipping"):
        run_train(validate(compose(exploding)), paths)
    assert (paths.model_dir / "model.pt").read_bytes() == before
    runs = MlflowClient(tracking).search_runs(
        [MlflowClient(tracking).get_experiment_by_name("rnnlab-forecast").experiment_id]
    )
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]


def test_hydra_multirun_logs_one_run_per_variant_in_one_experiment(
    tmp_path: Path, tracking: str
) -> None:
    variants = ["rnn", "lstm_attn", "mlp"]
    cmd = [
        sys.executable,
        "-m",
        "rnnlab.train",
        "-m",
        f"model={','.join(variants)}",
        *QUICK,
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model"] for r in runs) == sorted(variants)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all("test/model/mase" in r.data.metrics for r in runs)
