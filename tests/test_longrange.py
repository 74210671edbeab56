"""Long-range probes (adding, copy-memory) and the gradient-flow diagnostic."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.data.longrange import copy_sequences, generate_adding, load_prepared, prepare
from rnnlab.errors import ConfigError
from rnnlab.lightning.grad_flow import hidden_grad_norms, unrolled_forward
from rnnlab.lightning.module import SequenceModule
from rnnlab.models import RecurrentEncoder
from rnnlab.paths import RunPaths
from rnnlab.tasks.longrange import LongRangeTask, sequences

SMALL = ["data.n_train=64", "data.n_val=16", "data.n_test=16"]


@pytest.fixture(scope="session")
def longrange_cfg(compose_cfg):
    return lambda *overrides: compose_cfg(["task=longrange", *SMALL, *overrides])


@pytest.fixture
def prepared(longrange_cfg):
    """``prepared(directory, *overrides)`` -> the config and the paths its data is prepared in."""

    def make(tmp_path: Path, *overrides: str):
        cfg = longrange_cfg(*overrides)
        paths = RunPaths(tmp_path)
        prepare(cfg, paths)
        return cfg, paths

    return make


def test_adding_data_is_deterministic_and_well_formed(tmp_path: Path, prepared) -> None:
    cfg, paths = prepared(tmp_path / "a", "data=adding", "data.seq_len=30")
    _, again = prepared(tmp_path / "b", "data=adding", "data.seq_len=30")
    raw = (paths.raw_dir / "adding.npz").read_bytes()
    assert raw == (again.raw_dir / "adding.npz").read_bytes()
    _, other_seed = prepared(tmp_path / "c", "data=adding", "data.seq_len=30", "data.seed=7")
    assert raw != (other_seed.raw_dir / "adding.npz").read_bytes()

    data = LongRangeTask().load_data(cfg, paths)
    x, y = data.train.datasets["x"], data.train.datasets["y"]
    assert x.shape == (64, 30, 2) and y.shape == (64,) and len(data.val) == 16
    markers = x[..., 1]
    assert (markers.sum(1) == 2).all()
    first, second = markers[:, :15].argmax(1), markers[:, 15:].argmax(1) + 15
    assert (markers[:, :15].sum(1) == 1).all()  # one marker in each half
    expected = x[torch.arange(64), first, 0] + x[torch.arange(64), second, 0]
    torch.testing.assert_close(y, expected)
    preview = pd.read_csv(paths.raw_dir / "adding_preview.csv")
    assert list(preview.columns) == ["sequence", "t", "value", "marker", "target"]


def test_adding_baseline_is_one_sixth() -> None:
    target = generate_adding(50_000, 20, np.random.default_rng(0))["target"]
    assert abs(float(np.mean((target - 1.0) ** 2)) - 1 / 6) < 0.005


def test_copy_sequences_layout() -> None:
    symbols = np.array([[3, 1, 4]])
    x, y = copy_sequences(symbols, seq_len=5, n_symbols=8)
    assert x.tolist() == [[3, 1, 4, 0, 0, 0, 0, 9, 0, 0, 0]]
    assert y.tolist() == [[0, 0, 0, 0, 0, 0, 0, 0, 3, 1, 4]]


def test_copy_task_model_and_baseline(tmp_path: Path, prepared, longrange_cfg) -> None:
    cfg, paths = prepared(tmp_path, "data=copy_memory", "data.seq_len=12", "model=gru")
    task = LongRangeTask()
    data = task.load_data(cfg, paths)
    train = data.train.datasets
    assert train["x"].shape == (64, 12 + 20, 10) and train["y"].shape == (64, 32)
    model = task.build_model(cfg, data.meta)
    evaluation = task.evaluate(cfg, paths, model)
    metrics = evaluation.flat_metrics()
    assert metrics["test/baseline/cross_entropy"] == pytest.approx(10 * math.log(8) / 32)
    test = sequences(load_prepared(paths.prepared_dir)[1]["test"], data.meta).datasets
    with torch.no_grad():
        predicted = model.eval()(test["x"]).argmax(-1)  # (n, L) token per step
    recalled = (predicted[:, -10:] == test["y"][:, -10:]).float().mean().item()
    assert metrics["test/model/recall_accuracy"] == pytest.approx(recalled)
    frame = task.example_frame(cfg, paths)  # the first test sequence, one row per step
    out = task.predict_frame(type("Trained", (), {"model": model, "meta": data.meta})(), frame)
    assert out["output"].tolist() == predicted[0].tolist()
    with pytest.raises(ConfigError, match="per-step"):
        task.build_model(longrange_cfg("data=copy_memory", "model=mlp"), data.meta)


def test_unrolled_encoder_matches_the_fused_one() -> None:
    torch.manual_seed(0)
    encoder = RecurrentEncoder(3, 5, num_layers=2, cell="lstm")
    x, lengths = torch.randn(4, 7, 3), torch.tensor([7, 3, 5, 1])
    fused, unrolled = encoder(x, lengths), unrolled_forward(encoder, x, lengths, [])
    torch.testing.assert_close(fused[0], unrolled[0])
    torch.testing.assert_close(fused[1], unrolled[1])
    torch.testing.assert_close(fused[2][0], unrolled[2][0])  # h_n of every layer
    torch.testing.assert_close(fused[2][1], unrolled[2][1])  # c_n


def _grad_norms(prepared, tmp_path: Path, model: str) -> list[float]:
    cfg, paths = prepared(tmp_path, "data=adding", "data.seq_len=100", f"model={model}")
    task = LongRangeTask()
    data = task.load_data(cfg, paths)
    torch.manual_seed(0)
    module = SequenceModule(task.build_model(cfg, data.meta), task.loss, cfg.trainer)
    norms = hidden_grad_norms(module, data.train[:32])
    assert all(p.grad is None for p in module.parameters())  # the probe only reads gradients
    return norms


def test_tanh_rnn_gradients_vanish_over_time(tmp_path: Path, prepared) -> None:
    norms = _grad_norms(prepared, tmp_path / "rnn", "rnn")
    assert len(norms) == 100
    assert norms[0] < 1e-3 * norms[-1]  # orders of magnitude lost over 100 steps
    irnn = _grad_norms(prepared, tmp_path / "irnn", "rnn_relu")
    assert irnn[0] > 0.1 * irnn[-1]  # the identity recurrence carries them back


@pytest.mark.slow
def test_grad_flow_is_recorded_and_logged(tmp_path: Path, tracking: str, longrange_cfg) -> None:
    from mlflow import MlflowClient

    from rnnlab.pipeline import run_pipeline

    cfg = longrange_cfg(
        "data=adding",
        "data.seq_len=20",
        "model=rnn",
        "model.hidden_size=8",
        "trainer.max_epochs=1",
        "trainer.batch_size=32",
        "logger.log_model=false",
    )
    result = run_pipeline(cfg, RunPaths(tmp_path / "job"))
    flow = pd.read_csv(tmp_path / "job" / "models" / "grad_flow.csv")
    assert set(flow["stage"]) == {"start", "end"}
    assert sorted(flow["t"].unique()) == list(range(1, 21))
    run_id = result["train"]["mlflow_run_id"]
    logged = {a.path for a in MlflowClient(tracking).list_artifacts(run_id, "plots")}
    assert {"plots/grad_flow.csv", "plots/grad_flow.png"} <= logged
    metrics = MlflowClient(tracking).get_run(run_id).data.metrics
    assert metrics["test/baseline/mse"] == pytest.approx(1 / 6)


def test_the_probe_leaves_training_unchanged(tmp_path: Path, longrange_cfg) -> None:
    from rnnlab.pipeline import run_pipeline

    scores = []
    for batches in (0, 3):
        cfg = longrange_cfg(
            "data=adding",
            "data.seq_len=20",
            "model=lstm",  # two layers with dropout between them: draws random numbers
            "model.hidden_size=8",
            "trainer.max_epochs=2",
            "logger=none",
            f"trainer.grad_flow_batches={batches}",
        )
        result = run_pipeline(cfg, RunPaths(tmp_path / str(batches)))
        scores.append((result["train"]["best_val_loss"], result["evaluate"]["test"]["model"]))
    assert scores[0] == scores[1]
    assert (tmp_path / "3" / "models" / "grad_flow.csv").exists()
    assert not (tmp_path / "0" / "models" / "grad_flow.csv").exists()
