"""Forecasts every model must beat, computed on the same windows as the model (numpy only).

All work on the scaled series: ``values`` (N, targets) and window start rows as cut by
``rnnlab.data.preprocessing.window_starts``; they return (windows, horizon, targets).
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.preprocessing import make_windows

# Ridge penalties tried for the NLinear baseline; the one with the lowest validation MSE wins.
RIDGE_ALPHAS: tuple[float, ...] = (1e-6, 1.0, 10.0, 100.0, 1000.0)


def naive(values: np.ndarray, starts: np.ndarray, lookback: int, horizon: int) -> np.ndarray:
    """The last observed value, repeated over the horizon."""
    last = values[starts + lookback - 1]  # (W, targets)
    return np.repeat(last[:, None, :], horizon, axis=1)


def seasonal_naive(
    values: np.ndarray, starts: np.ndarray, lookback: int, horizon: int, period: int
) -> np.ndarray:
    """The value one season before each target step (from the lookback, never the future)."""
    steps = np.arange(1, horizon + 1)
    rows = starts[:, None] + lookback - 1 + steps[None, :]  # (W, H)
    return values[rows - period * np.ceil(steps / period).astype(int)[None, :]]


def ridge_nlinear(
    values: np.ndarray,
    fit_starts: np.ndarray,
    select_starts: np.ndarray,
    predict_starts: np.ndarray,
    lookback: int,
    horizon: int,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
) -> tuple[np.ndarray, list[float]]:
    """Closed-form ridge NLinear, per target: subtract each window's last value, one linear map
    (with an unpenalised intercept) from the lookback to the horizon, add the last value back.

    Fitted on the ``fit_starts`` windows (train), alpha chosen by MSE on ``select_starts``
    (val), forecasts for ``predict_starts`` (test). Returns the forecasts and the chosen alphas.
    """
    forecasts, chosen = [], []
    for j in range(values.shape[1]):
        column = values[:, j : j + 1].astype(np.float64)
        fit = _RidgeNLinear(*_normalised_windows(column, fit_starts, lookback, horizon)[:2])
        x, y, last = _normalised_windows(column, select_starts, lookback, horizon)
        errors = [np.mean((fit.predict(x, alpha) - y) ** 2) for alpha in alphas]
        best = alphas[int(np.argmin(errors))]
        x, _, last = _normalised_windows(column, predict_starts, lookback, horizon)
        forecasts.append(fit.predict(x, best) + last)
        chosen.append(best)
    return np.stack(forecasts, axis=-1), chosen


def _normalised_windows(
    column: np.ndarray, starts: np.ndarray, lookback: int, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (W, L) and targets (W, H) of one series minus each window's last value (W, 1)."""
    x, y = make_windows(column, starts, lookback, horizon, [0])
    last = x[:, -1:, 0]
    return x[..., 0] - last, y[..., 0] - last, last


class _RidgeNLinear:
    """Ridge regression with an unpenalised intercept; one eigendecomposition of the centred
    Gram matrix serves every alpha."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_mean, self.y_mean = x.mean(axis=0), y.mean(axis=0)
        xc = x - self.x_mean
        eigenvalues, self.vectors = np.linalg.eigh(xc.T @ xc)
        self.eigenvalues = np.maximum(eigenvalues, 0.0)
        self.projected = self.vectors.T @ (xc.T @ (y - self.y_mean))

    def predict(self, x: np.ndarray, alpha: float) -> np.ndarray:
        weights = self.vectors @ (self.projected / (self.eigenvalues + alpha)[:, None])
        return (x - self.x_mean) @ weights + self.y_mean
