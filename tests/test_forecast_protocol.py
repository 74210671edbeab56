"""The forecasting protocol: linear models, the ridge NLinear baseline on the same windows,
scaled (z) errors, per-window predictions, window normalisation and channel independence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.config import compose, validate
from rnnlab.data import prepare_task_data
from rnnlab.data.forecast import load_prepared
from rnnlab.data.preprocessing import infer_seasonal_period
from rnnlab.errors import DataError
from rnnlab.model_store import load_trained
from rnnlab.models import build_network
from rnnlab.models.window_norm import WindowNorm
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from rnnlab.tasks.forecast import Forecaster, mase_scale_of, windows
from rnnlab.tasks.forecast_baselines import naive, ridge_nlinear


@pytest.mark.parametrize(
    "model", [["model=linear"], ["task.window_norm=revin"]], ids=["nlinear", "segrnn-revin"]
)
def test_trained_model_beats_naive_and_its_predictions_reproduce_the_metrics(
    tmp_path: Path, model: list[str]
) -> None:
    """The linear model and the default forecaster (a GRU over segments) on the embedded CO2
    series; the saved predictions give back every metric, the reloaded model the predictions."""
    overrides = ["logger=none", "trainer.max_epochs=4", "trainer.num_threads=1", *model]
    paths = RunPaths(tmp_path)
    test = run_pipeline(validate(compose(overrides)), paths)["evaluate"]["test"]
    assert test["model"]["mse_z"] < 0.5 * test["naive"]["mse_z"]
    assert test["model"]["mae"] < test["naive"]["mae"]

    frame = pd.read_parquet(paths.predictions_dir / "test.parquet")
    assert len(frame) == test["windows"] * 13 and frame["window"].nunique() == test["windows"]
    for name in ("model", "naive", "seasonal_naive", "ridge_nlinear"):
        error = frame[name] - frame["actual"]
        assert np.mean(np.abs(error)) == pytest.approx(test[name]["mae"], rel=1e-6)
        mse_z = np.mean((error / frame["scale"]) ** 2)
        assert mse_z == pytest.approx(test[name]["mse_z"], rel=1e-6)

    # The saved model, reloaded, predicts the numbers evaluate recorded.
    trained = load_trained(paths.model_dir)
    series = pd.read_csv(paths.prepared_dir / "series.csv")
    first = frame[frame["window"] == 0]
    origin = int(np.flatnonzero(pd.to_datetime(series["date"]) == first["origin"].iloc[0])[0])
    x = torch.tensor(series["co2"].to_numpy(np.float32)[origin - 103 : origin + 1])[None, :, None]
    with torch.no_grad():
        scaled = trained.model(x)[0, :, 0].numpy()
    scale, loc = first["scale"].to_numpy(), first["loc"].to_numpy()
    np.testing.assert_allclose(scaled * scale + loc, first["model"], rtol=1e-5)


def test_ridge_nlinear_learns_a_seasonal_series_that_naive_cannot() -> None:
    t = np.arange(600)
    rng = np.random.default_rng(0)
    values = (np.sin(2 * np.pi * t / 12) + 0.01 * t + rng.normal(0, 0.05, t.size))[:, None]
    lookback, horizon = 36, 6
    fit, select, test = np.arange(0, 300), np.arange(300, 420), np.arange(450, 550)
    forecast, alphas = ridge_nlinear(values, fit, select, test, lookback, horizon)
    rows = test[:, None] + lookback + np.arange(horizon)[None, :]
    actual = values[rows]
    assert forecast.shape == actual.shape == (100, horizon, 1) and len(alphas) == 1
    ridge_mse = np.mean((forecast - actual) ** 2)
    assert ridge_mse < 0.01  # about the noise level, 0.05 ** 2 per step plus trend
    assert ridge_mse < 0.05 * np.mean((naive(values, test, lookback, horizon) - actual) ** 2)


def test_an_exactly_periodic_series_is_evaluated(csv_cfg, tmp_path: Path) -> None:
    """The seasonal naive is exact on a repeating pattern (test MAE 0): evaluation still
    reports every error and leaves out only the skill ratio, which has no meaning there."""
    pattern = np.array([3.0, 5, 9, 4, 1, 7, 8, 2, 6, 5, 3, 4])
    dates = pd.date_range("2023-01-01", periods=360, freq="MS").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"date": dates, "value": np.tile(pattern, 30)})
    overrides = ["logger=none", "task.lookback=24", "task.horizon=6", "trainer.max_epochs=2"]
    cfg = csv_cfg(frame, overrides=[*overrides, "trainer.num_threads=1"], seasonal_period=12)
    test = run_pipeline(cfg, RunPaths(tmp_path / "job"))["evaluate"]["test"]
    assert test["seasonal_naive"]["mae"] == 0 and np.isfinite(test["model"]["mase"])
    assert "skill_vs_seasonal_naive" not in test["model"]


def test_mase_scale_stays_finite_for_a_purely_periodic_series() -> None:
    t = np.arange(480)
    periodic = np.sin(2 * np.pi * t / 24)[:, None]
    trending = (periodic[:, 0] + 0.01 * t)[:, None]
    both = np.hstack([periodic, trending])
    scale = mase_scale_of(both, 24)
    # The seasonal naive fits the periodic column exactly: the lag-1 naive's MAE is used.
    assert scale[0] == pytest.approx(np.abs(np.diff(periodic[:, 0])).mean())
    assert scale[1] == pytest.approx(0.01 * 24)


def test_revin_restores_what_it_normalised() -> None:
    norm = WindowNorm("revin", n_features=3, n_targets=2)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, 3.0]))
        norm.bias.copy_(torch.tensor([0.1, -0.3, 1.0]))
    x = 5 + 10 * torch.randn(4, 20, 3)
    normed, restore = norm(x)
    # Per window and channel: zero mean, unit variance before the affine map.
    plain = (normed - norm.bias) / norm.weight
    torch.testing.assert_close(plain.mean(dim=1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(restore(normed[..., :2]), x[..., :2], atol=1e-4, rtol=1e-5)


def test_channel_independence_shares_one_network_across_targets() -> None:
    torch.manual_seed(0)
    network = build_network("gru", input_size=2, output_size=5, seq_len=12, segment_len=4)
    model = Forecaster(
        network, 5, n_features=3, n_targets=2, window_norm="revin", channel_independent=True
    )
    x = torch.randn(3, 12, 3)  # two targets, one covariate
    swapped = x[..., [1, 0, 2]]
    with torch.no_grad():
        out, out_swapped = model(x), model(swapped)
    assert out.shape == (3, 5, 2)
    torch.testing.assert_close(out_swapped, out[..., [1, 0]], atol=1e-6, rtol=0)


def hourly_frame(n: int) -> pd.DataFrame:
    t = np.arange(n)
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "date": pd.date_range("2016-07-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
            "OT": np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, n),
        }
    )


@pytest.mark.parametrize(
    "split",
    [
        {"train_end": 8640, "val_end": 11520, "test_end": 14400},
        {"train_end": "2017-06-26", "val_end": "2017-10-24", "test_end": "2018-02-21"},
    ],
    ids=["rows", "dates"],
)
def test_split_points_reproduce_the_standard_protocol_counts(tmp_path: Path, csv_cfg, split):
    """ETT's 12/4/4 months on hourly rows: 8640/2880/2880, rows after 14400 unused; at
    lookback 336, horizon 24 the test windows number 2857 (their lookback reaches into val)."""
    cfg = csv_cfg(
        hourly_frame(15000),
        overrides=["task.lookback=336", "task.horizon=24"],
        target_columns=["OT"],
        split=split,
    )
    paths = RunPaths(tmp_path / "run")
    counts = prepare_task_data(cfg, paths)
    assert (counts["rows"], counts["train"], counts["val"], counts["test"]) == (
        14400,
        8640,
        2880,
        2880,
    )
    series = load_prepared(paths.prepared_dir)
    assert series.meta["seasonal_period"] == 24  # inferred: hourly
    train = series.values[:8640, 0]
    assert abs(train.mean()) < 1e-6 and abs(train.std() - 1) < 1e-6  # z-scored on train only
    assert [len(windows(series, s, 336, 24)[0]) for s in ("train", "val", "test")] == [
        8281,
        2857,
        2857,
    ]


def test_split_points_that_do_not_fit_are_refused(tmp_path: Path, csv_cfg) -> None:
    split = {"train_end": 300, "val_end": 200}
    cfg = csv_cfg(hourly_frame(500), target_columns=["OT"], split=split)
    with pytest.raises(DataError, match="must increase"):
        prepare_task_data(cfg, RunPaths(tmp_path))


@pytest.mark.parametrize(
    ("freq", "period"),
    [("15min", 96), ("h", 24), ("D", 7), ("W-SUN", 52), ("MS", 12), ("QS", 4), ("YS", 1)],
)
def test_seasonal_period_is_inferred_from_the_time_index(freq: str, period: int) -> None:
    times = pd.Series(pd.date_range("2001-01-01", periods=40, freq=freq))
    assert infer_seasonal_period(times) == period


def test_keep_freed_memory_lets_a_large_buffer_be_reused_without_page_faults() -> None:
    """The kernel-time fix: after ``keep_freed_memory`` a freed 64 MB buffer (a training step's
    activations) comes back without faulting its pages in again."""
    import resource

    from rnnlab.lightning.trainer import keep_freed_memory

    if not keep_freed_memory():
        pytest.skip("not glibc: malloc has no mallopt here")

    def faults_of_one_buffer() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = np.ones(8 * 1024 * 1024)  # 64 MB, written through
        del buffer
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_one_buffer()  # the first one may grow the heap
    assert faults_of_one_buffer() < 50  # 0 measured; over 500 when glibc maps it afresh
