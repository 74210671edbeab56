"""Time-series forecasting: windows of scaled history in, a direct multi-step forecast out.

Evaluation happens on the original scale against the naive and seasonal-naive forecasts of the
very same test windows, so the model has to earn its MASE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchmetrics.functional as tmf
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from rnnlab.data.arrays import open_mapped
from rnnlab.data.checks import model_input, require_columns
from rnnlab.data.forecast import PreparedSeries, load_prepared
from rnnlab.data.preprocessing import Scaler, make_windows, window_starts
from rnnlab.errors import DataError
from rnnlab.model_store import TrainedModel
from rnnlab.models import build_network
from rnnlab.models.window_norm import WindowNorm
from rnnlab.paths import RunPaths
from rnnlab.tasks import forecast_baselines
from rnnlab.tasks.base import Evaluation, Task, TaskData
from rnnlab.tasks.inference import predict_batches


class SeriesWindows(Dataset):
    """``{"x": (lookback, F), "y": (horizon, targets)}`` windows of ``values`` starting at
    ``starts``, cut when an item is read: with ``values`` memory-mapped, only the windows of the
    batches being read are ever in memory, whatever the length of the series."""

    def __init__(
        self, values: np.ndarray, starts: np.ndarray, lookback: int, horizon: int, n_targets: int
    ) -> None:
        self.values, self.starts = values, starts
        self.lookback, self.horizon, self.n_targets = lookback, horizon, n_targets

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        start, cut = int(self.starts[i]), int(self.starts[i]) + self.lookback
        x = np.array(self.values[start:cut], dtype=np.float32)  # a copy, out of the map
        y = np.array(self.values[cut : cut + self.horizon, : self.n_targets], dtype=np.float32)
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}

    def __getstate__(self) -> dict[str, Any]:
        # A spawned process (ddp_spawn, loader workers) maps the file again, not a pickled copy.
        state = dict(self.__dict__)
        if isinstance(self.values, np.memmap):
            state["values"] = Path(self.values.filename)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["values"], Path):
            state["values"] = open_mapped(state["values"])
        self.__dict__.update(state)


def windows(
    series: PreparedSeries, split: str, lookback: int, horizon: int
) -> tuple[np.ndarray, SeriesWindows]:
    """Start rows and the windows of every (lookback, horizon) window whose targets fall
    inside one split."""
    starts = window_starts(*series.split_range(split), lookback, horizon)
    return starts, SeriesWindows(series.values, starts, lookback, horizon, series.n_targets)


class Forecaster(nn.Module):
    """A sequence network with a forecasting head: (B, lookback, F) -> (B, horizon, targets).

    Each window is normalised first (``window_norm``: ``last`` subtracts its last target value,
    NLinear; ``revin`` standardises it, RevIN; see ``rnnlab.models.window_norm``) and the
    forecast mapped back, so the network learns shapes rather than levels. With several targets
    and ``channel_independent``, the network sees one target at a time (with the covariates) and
    its weights are shared across targets (PatchTST, SegRNN): more windows to learn from, and no
    spurious cross-target weights.
    """

    def __init__(
        self,
        network: nn.Module,
        horizon: int,
        n_features: int,
        n_targets: int,
        window_norm: str,
        channel_independent: bool = False,
    ) -> None:
        super().__init__()
        self.network, self.horizon, self.n_targets = network, horizon, n_targets
        self.norm = WindowNorm(window_norm, n_features, n_targets)
        self.channel_independent = channel_independent and n_targets > 1

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        # Windows are fixed-length: ``lengths`` is accepted and unused.
        batch, steps, _ = x.shape
        nt, horizon = self.n_targets, self.horizon
        x, restore = self.norm(x)
        if not self.channel_independent:
            return restore(self.network(x).view(batch, horizon, nt))  # (B, H, targets)
        targets = x[..., :nt].transpose(1, 2).reshape(batch * nt, steps, 1)  # row b*nt + j
        covariates = x[..., nt:].repeat_interleave(nt, dim=0)  # (B*nt, T, C)
        out = self.network(torch.cat([targets, covariates], dim=-1))  # (B*nt, H)
        return restore(out.view(batch, nt, horizon).transpose(1, 2))  # (B, H, targets)


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
        n_features, n_targets = meta["n_features"], meta["n_targets"]
        independent = cfg.task.channel_independent and n_targets > 1
        network = build_network(
            cfg.model.arch,
            input_size=n_features - n_targets + 1 if independent else n_features,
            output_size=cfg.task.horizon * (1 if independent else n_targets),
            seq_len=cfg.task.lookback,
            **hparams,
        )
        return Forecaster(
            network, cfg.task.horizon, n_features, n_targets, cfg.task.window_norm, independent
        )

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
        require_columns(frame, columns, fix=f"The model needs {columns}.")
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
        nt, m = series.n_targets, series.meta["seasonal_period"]
        starts = window_starts(*series.split_range("test"), lookback, horizon)
        x, _ = make_windows(series.values, starts, lookback, horizon, list(range(nt)))
        scaled = torch.cat(predict_batches(model, torch.from_numpy(x))).numpy()
        values = series.values[:, :nt].astype(np.float64)  # scaled targets (N, nt)
        ridge, alphas = forecast_baselines.ridge_nlinear(
            values,
            window_starts(*series.split_range("train"), lookback, horizon),
            window_starts(*series.split_range("val"), lookback, horizon),
            starts,
            lookback,
            horizon,
        )
        forecasts_z = {  # every forecast of the same test windows, on the scaled (z) scale
            "model": scaled.astype(np.float64),
            "naive": forecast_baselines.naive(values, starts, lookback, horizon),
            "seasonal_naive": forecast_baselines.seasonal_naive(
                values, starts, lookback, horizon, m
            ),
            "ridge_nlinear": ridge,
        }
        rows = starts[:, None] + lookback + np.arange(horizon)[None, :]  # (W, H)
        actual_z = values[rows]  # (W, H, nt)
        targets = list(range(nt))
        unscale = lambda z: series.scaler.inverse(z, targets)  # noqa: E731
        history = unscale(values)
        train_end = series.bounds.val_start
        mase_scale = mase_scale_of(history[:train_end], m)
        actual = history[rows]
        forecasts = {name: unscale(z) for name, z in forecasts_z.items()}
        metrics: dict[str, Any] = {
            name: {
                **_point_metrics(forecasts[name], actual, mase_scale),
                **_scaled_metrics(forecasts_z[name], actual_z),
            }
            for name in forecasts
        }
        if (reference := metrics["seasonal_naive"]["mae"]) > 0:
            metrics["model"]["skill_vs_seasonal_naive"] = 1 - metrics["model"]["mae"] / reference
        else:  # an exactly periodic test split: nothing can beat the seasonal naive
            print(
                "Note: the seasonal naive forecast is exact on the test split (MAE 0), so "
                "skill_vs_seasonal_naive is left out; compare the errors themselves.",
                flush=True,
            )
        metrics["ridge_nlinear"]["alpha"] = float(np.mean(alphas))
        metrics["windows"] = len(starts)
        model_forecast, snaive = forecasts["model"], forecasts["seasonal_naive"]
        table = _forecast_table(series, starts, lookback, horizon, actual, model_forecast, snaive)
        names = series.meta["target_columns"]
        return Evaluation(
            metrics={"test": metrics},
            plot_tables={"forecast": table},
            figures={"forecast": _forecast_figure(table, names, series.meta["dataset"])},
            predictions=_predictions_frame(series, starts, lookback, actual, forecasts),
        )


def mase_scale_of(train: np.ndarray, m: int) -> np.ndarray:
    """MASE's denominator per target: the in-sample MAE of the seasonal naive forecast on the
    training rows (Hyndman & Koehler 2006). Where that is (numerically) zero, a purely
    periodic target, the lag-1 naive's MAE instead: dividing by zero would report an infinite
    or astronomically large MASE for every model. (A constant target is refused at prepare.)"""
    seasonal = np.abs(train[m:] - train[:-m]).mean(axis=0)
    lag1 = np.abs(train[1:] - train[:-1]).mean(axis=0)
    return np.where(seasonal > 1e-9 * lag1, seasonal, lag1)


def _point_metrics(
    pred: np.ndarray, actual: np.ndarray, mase_scale: np.ndarray
) -> dict[str, float]:
    """Errors on the original scale; MASE averages each target's MAE over its own scale."""
    p, a = torch.from_numpy(pred), torch.from_numpy(actual)
    mae_per_target = (p - a).abs().mean(dim=(0, 1)).numpy()
    return {
        "mae": float(tmf.mean_absolute_error(p, a)),
        "mse": float(tmf.mean_squared_error(p, a)),
        "rmse": float(tmf.mean_squared_error(p, a, squared=False)),
        "smape": 100 * float(tmf.symmetric_mean_absolute_percentage_error(p, a)),
        "mase": float(np.mean(mae_per_target / mase_scale)),
    }


def _scaled_metrics(pred_z: np.ndarray, actual_z: np.ndarray) -> dict[str, float]:
    """MSE and MAE on the scaled series (z-scores with ``data.scaling=standard``), the scale the
    long-horizon forecasting literature reports, comparable across series."""
    error = pred_z - actual_z
    return {"mse_z": float(np.mean(error**2)), "mae_z": float(np.mean(np.abs(error)))}


def _predictions_frame(
    series: PreparedSeries,
    starts: np.ndarray,
    lookback: int,
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Every test forecast, one row per (window, step, target), on the original scale, with the
    target's scaler ``loc``/``scale`` so scaled errors follow as (value - loc) / scale."""
    w, h, j = (index.ravel() for index in np.indices(actual.shape))
    origin = starts + lookback - 1
    times = series.times.to_numpy()
    scaler = series.scaler
    return pd.DataFrame(
        {
            "window": w,
            "origin": times[origin[w]],
            "time": times[origin[w] + h + 1],
            "step": h + 1,
            "target": np.asarray(series.meta["target_columns"])[j],
            "actual": actual.ravel(),
            **{name: forecast.ravel() for name, forecast in forecasts.items()},
            "loc": np.asarray(scaler.loc)[j],
            "scale": np.asarray(scaler.scale)[j],
        }
    )


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
