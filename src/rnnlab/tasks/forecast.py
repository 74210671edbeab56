"""Time-series forecasting: windows of scaled history in, a direct multi-step forecast out.

Evaluation happens on the original scale against the naive and seasonal-naive forecasts of the
very same test windows, so the model has to earn its MASE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torchmetrics.functional as tmf
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import StackDataset

from rnnlab.data.checks import model_input
from rnnlab.data.forecast import PreparedSeries, load_prepared
from rnnlab.data.preprocessing import Scaler, make_windows, window_starts
from rnnlab.errors import DataError
from rnnlab.model_store import TrainedModel
from rnnlab.models import build_network
from rnnlab.paths import RunPaths
from rnnlab.tasks.base import Evaluation, Task, TaskData
from rnnlab.tasks.inference import predict_batches


def windows(
    series: PreparedSeries, split: str, lookback: int, horizon: int
) -> tuple[np.ndarray, StackDataset]:
    """Start rows and ``{"x", "y"}`` items of every (lookback, horizon) window whose targets
    fall inside one split."""
    start, end = series.split_range(split)
    starts = window_starts(start, end, lookback, horizon)
    targets = list(range(series.n_targets))
    x, y = make_windows(series.values, starts, lookback, horizon, targets)
    return starts, StackDataset(x=torch.from_numpy(x), y=torch.from_numpy(y))


class Forecaster(nn.Module):
    """A sequence network with a forecasting head: (B, lookback, F) -> (B, horizon, targets).

    With ``window_norm="last"`` each window is shifted by its last observed target value before
    the network sees it and the forecast shifted back (NLinear, Zeng et al. 2023): the network
    learns changes rather than levels, so a trending series does not leave the range it saw
    in training.
    """

    def __init__(self, network: nn.Module, horizon: int, n_targets: int, window_norm: str) -> None:
        super().__init__()
        self.network, self.horizon, self.n_targets = network, horizon, n_targets
        self.window_norm = window_norm

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        nt = self.n_targets  # windows are fixed-length: ``lengths`` is accepted and unused
        if self.window_norm == "last":
            last = x[:, -1:, :nt]  # (B, 1, targets)
            x = torch.cat([x[..., :nt] - last, x[..., nt:]], dim=-1)
        out = self.network(x).view(x.shape[0], self.horizon, nt)  # (B, H, targets)
        return out + last if self.window_norm == "last" else out


class ForecastTask(Task):
    name = "forecast"
    # ``predict_frame`` takes one whole series: batch prediction (rnnlab.predict) feeds it one
    # series at a time instead of arbitrary chunks of rows.
    predict_unit = "sequence"

    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        series = load_prepared(paths.prepared_dir)
        lookback, horizon = cfg.task.lookback, cfg.task.horizon
        meta = {"n_features": series.values.shape[1], "n_targets": series.n_targets, **series.meta}
        return TaskData(
            train=windows(series, "train", lookback, horizon)[1],
            val=windows(series, "val", lookback, horizon)[1],
            meta=meta,
        )

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module:
        hparams = {k: v for k, v in cfg.model.items() if k not in ("name", "arch")}
        network = build_network(
            cfg.model.arch,
            input_size=meta["n_features"],
            output_size=cfg.task.horizon * meta["n_targets"],
            seq_len=cfg.task.lookback,
            **hparams,
        )
        return Forecaster(network, cfg.task.horizon, meta["n_targets"], cfg.task.window_norm)

    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return nn.functional.mse_loss(prediction, batch["y"])

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        """The last ``lookback`` rows of the series, on the original scale."""
        series = load_prepared(paths.prepared_dir)
        columns = [*series.meta["target_columns"], *series.meta["covariate_columns"]]
        recent = series.scaler.inverse(series.values[-cfg.task.lookback :].astype(np.float64))
        return pd.DataFrame(recent, columns=columns)

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """Forecast ``horizon`` steps after the last row of ``frame`` (recent history).

        ``frame`` holds the target and covariate columns, oldest row first, at least
        ``lookback`` rows; extra columns are ignored. Returns one row per step ahead.
        """
        meta, lookback = trained.meta, trained.cfg.task.lookback
        targets, columns = (
            meta["target_columns"],
            [*meta["target_columns"], *meta["covariate_columns"]],
        )
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"Input lacks column(s) {missing}; the model needs {columns}.")
        if len(frame) < lookback:
            raise DataError(
                f"Input has {len(frame)} rows; the model needs the last {lookback} "
                "(task.lookback) rows of history."
            )
        scaler = Scaler(**meta["scaler"])
        values = model_input(frame.iloc[-lookback:], columns, scaler.loc, scaler.scale)
        x = torch.from_numpy(scaler.transform(values).astype(np.float32))[None]  # (1, L, F)
        (batch,) = predict_batches(trained.model, x)  # one batch of one window
        scaled = batch[0].numpy().astype(np.float64)  # (H, targets)
        forecast = scaler.inverse(scaled, list(range(len(targets))))
        out = pd.DataFrame(forecast, columns=targets)
        out.insert(0, "step", np.arange(1, len(out) + 1))
        return out

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        series = load_prepared(paths.prepared_dir)
        lookback, horizon = cfg.task.lookback, cfg.task.horizon
        starts, test = windows(series, "test", lookback, horizon)
        scaled = torch.cat(predict_batches(model, test.datasets["x"])).numpy()
        nt, m = series.n_targets, series.meta["seasonal_period"]
        scaler = series.scaler
        targets = list(range(nt))
        history = scaler.inverse(series.values[:, :nt].astype(np.float64), targets)  # (N, nt)
        forecast = scaler.inverse(scaled.astype(np.float64), targets)  # (W, H, nt)
        rows = starts[:, None] + lookback + np.arange(horizon)[None, :]  # (W, H)
        actual = history[rows]
        origin = starts + lookback - 1
        steps = np.arange(1, horizon + 1)
        naive = np.repeat(history[origin][:, None, :], horizon, axis=1)
        snaive = history[rows - m * np.ceil(steps / m).astype(int)[None, :]]
        scale = np.abs(
            history[m : series.bounds.val_start] - history[: series.bounds.val_start - m]
        )
        mase_scale = scale.mean(axis=0)  # in-sample seasonal-naive MAE per target (Hyndman 2006)

        metrics = {
            "model": _point_metrics(forecast, actual, mase_scale),
            "naive": _point_metrics(naive, actual, mase_scale),
            "seasonal_naive": _point_metrics(snaive, actual, mase_scale),
        }
        metrics["model"]["skill_vs_seasonal_naive"] = 1 - (
            metrics["model"]["mae"] / metrics["seasonal_naive"]["mae"]
        )
        metrics["windows"] = len(test)
        table = _forecast_table(series, starts, lookback, horizon, actual, forecast, snaive)
        names = series.meta["target_columns"]
        return Evaluation(
            metrics={"test": metrics},
            plot_tables={"forecast": table},
            figures={"forecast": _forecast_figure(table, names, series.meta["dataset"])},
        )


def _point_metrics(
    pred: np.ndarray, actual: np.ndarray, mase_scale: np.ndarray
) -> dict[str, float]:
    p, a = torch.from_numpy(pred), torch.from_numpy(actual)
    mae_per_target = (p - a).abs().mean(dim=(0, 1)).numpy()
    return {
        "mae": float(tmf.mean_absolute_error(p, a)),
        "rmse": float(tmf.mean_squared_error(p, a, squared=False)),
        "smape": 100 * float(tmf.symmetric_mean_absolute_percentage_error(p, a)),
        "mase": float(np.mean(mae_per_target / mase_scale)),
    }


def _forecast_table(
    series: PreparedSeries,
    starts: np.ndarray,
    lookback: int,
    horizon: int,
    actual: np.ndarray,
    forecast: np.ndarray,
    snaive: np.ndarray,
) -> pd.DataFrame:
    """Non-overlapping test windows laid end to end: one row per test time step and target."""
    chosen = np.arange(0, len(starts), horizon)
    frames = []
    for j, name in enumerate(series.meta["target_columns"]):
        rows = (starts[chosen, None] + lookback + np.arange(horizon)[None, :]).ravel()
        frames.append(
            pd.DataFrame(
                {
                    "t": rows,
                    "date": series.times.iloc[rows].dt.strftime("%Y-%m-%d").to_numpy(),
                    "target": name,
                    "actual": actual[chosen, :, j].ravel(),
                    "forecast": forecast[chosen, :, j].ravel(),
                    "seasonal_naive": snaive[chosen, :, j].ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _forecast_figure(table: pd.DataFrame, names: list[str], dataset: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(11, 3.2 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        part = table[table["target"] == name]
        dates = pd.to_datetime(part["date"])
        ax.plot(dates, part["actual"], color="black", lw=1.4, label="actual")
        ax.plot(dates, part["forecast"], color="tab:blue", lw=1.2, label="model")
        ax.plot(
            dates, part["seasonal_naive"], color="tab:orange", lw=1, ls="--", label="seasonal naive"
        )
        ax.set_title(f"{dataset}: {name} — test forecasts (successive horizons)")
        ax.legend(loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
