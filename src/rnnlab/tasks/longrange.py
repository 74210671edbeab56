"""Long-range-dependency probes: the adding problem and the copy-memory task.

``task=longrange data=adding`` is sequence -> scalar regression (MSE, judged against the 1/6
of always predicting 1); ``task=longrange data=copy_memory`` is sequence -> sequence
classification with per-step outputs (cross-entropy, judged against the memoryless baseline).
Both reuse the generic recurrent encoder, so every cell in ``conf/model`` can be compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import StackDataset

from rnnlab.data.checks import model_input, require_columns
from rnnlab.data.longrange import adding_inputs, copy_sequences, load_prepared
from rnnlab.errors import DataError
from rnnlab.model_store import TrainedModel
from rnnlab.models import RecurrentEncoder, build_network, init_weights
from rnnlab.paths import RunPaths
from rnnlab.tasks.base import Evaluation, Task, TaskData
from rnnlab.tasks.inference import predict_batches
from rnnlab.tasks.recurrent_encoder_options import recurrent_options


def sequences(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> StackDataset:
    """Model-ready ``{"x", "y"}`` items of one split: float (T, 2) inputs and a sum for adding,
    one-hot (L, V) inputs and per-step token ids for copy."""
    if meta["problem"] == "adding":
        x = torch.from_numpy(adding_inputs(arrays["values"], arrays["positions"]))
        return StackDataset(x=x, y=torch.from_numpy(arrays["target"]))
    x, y = copy_sequences(arrays["symbols"], meta["seq_len"], meta["n_symbols"])
    one_hot = nn.functional.one_hot(torch.from_numpy(x), meta["n_symbols"] + 2).float()
    return StackDataset(x=one_hot, y=torch.from_numpy(y))


class PerStepClassifier(nn.Module):
    """Recurrent encoder with a linear head at every step: (B, T, F) -> (B, T, classes)."""

    def __init__(
        self, encoder: RecurrentEncoder, n_classes: int, init: str, max_timescale: int
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.output_size, n_classes)
        init_weights(self, init, max_timescale)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        outputs, _, _ = self.encoder(x, lengths)  # (B, T, D)
        return self.head(outputs)  # (B, T, classes)


class Regressor(nn.Module):
    """A sequence-to-vector network with one output: (B, T, F) -> (B,)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.network(x, lengths).squeeze(-1)  # (B,)


class LongRangeTask(Task):
    name = "longrange"

    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        meta, splits = load_prepared(paths.prepared_dir, ("train", "val"))
        train, val = splits["train"], splits["val"]
        meta = {**meta, "n_features": 2 if meta["problem"] == "adding" else meta["n_symbols"] + 2}
        return TaskData(sequences(train, meta), sequences(val, meta), meta)

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module:
        hparams = {k: v for k, v in cfg.model.items() if k not in ("name", "arch")}
        if meta["problem"] == "adding":
            network = build_network(
                cfg.model.arch, meta["n_features"], 1, seq_len=meta["seq_len"], **hparams
            )
            return Regressor(network)
        options = recurrent_options(cfg, why_not_bidirectional=None)
        init = options.pop("init")  # applied to encoder and head together, over the full length
        encoder = RecurrentEncoder(meta["n_features"], **options)
        length = meta["seq_len"] + 2 * meta["copy_length"]
        return PerStepClassifier(encoder, meta["n_symbols"] + 1, init, length)

    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor:
        if prediction.dim() == 3:  # copy: (B, L, classes) logits against (B, L) ids
            return nn.functional.cross_entropy(prediction.flatten(0, 1), batch["y"].flatten())
        return nn.functional.mse_loss(prediction, batch["y"])

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        """The first test sequence in long form (one row per step), as the preview CSV shows."""
        meta, splits = load_prepared(paths.prepared_dir, ("test",))
        arrays = splits["test"]
        if meta["problem"] == "adding":
            x = adding_inputs(arrays["values"][:1], arrays["positions"][:1])[0]
            return pd.DataFrame({"value": x[:, 0], "marker": x[:, 1]})
        x, _ = copy_sequences(arrays["symbols"][:1], meta["seq_len"], meta["n_symbols"])
        return pd.DataFrame({"input": x[0]})

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """One sequence, one row per step: ``value``, ``marker`` (adding) or ``input`` (copy).

        Returns the predicted sum (adding, one row) or the predicted token per step (copy).
        """
        meta = trained.meta
        columns = ["value", "marker"] if meta["problem"] == "adding" else ["input"]
        require_columns(frame, columns, fix=f"Send one row per step with {columns}.")
        values = model_input(frame, columns)
        if meta["problem"] == "adding":
            x = torch.from_numpy(values.astype(np.float32))[None]  # (1, T, 2)
            (total,) = predict_batches(trained.model, x)
            return pd.DataFrame({"sum": total.numpy().astype(np.float64)})
        tokens = torch.from_numpy(values[:, 0].astype(np.int64))
        vocab = meta["n_symbols"] + 2
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise DataError(f"Column `input` holds token ids 0..{vocab - 1} (0 blank).")
        x = nn.functional.one_hot(tokens, vocab).float()[None]  # (1, L, V)
        (logits,) = predict_batches(trained.model, x)  # (1, L, classes)
        predicted = logits[0].argmax(-1).numpy()  # (L,)
        return pd.DataFrame({"t": np.arange(len(predicted)), "output": predicted})

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        meta, splits = load_prepared(paths.prepared_dir, ("test",))
        arrays = splits["test"]
        test = sequences(arrays, meta).datasets
        prediction = torch.cat(predict_batches(model, test["x"]))
        if meta["problem"] == "adding":
            return _evaluate_adding(prediction, test["y"], meta)
        return _evaluate_copy(prediction, test["y"], meta)


def _evaluate_adding(prediction: Tensor, target: Tensor, meta: dict[str, Any]) -> Evaluation:
    mse = float(nn.functional.mse_loss(prediction, target))
    baseline = meta["baseline_mse"]
    metrics = {
        "model": {"mse": mse, "skill_vs_baseline": 1 - mse / baseline},
        "baseline": {"mse": baseline},
        "seq_len": meta["seq_len"],
        "sequences": len(target),
    }
    table = pd.DataFrame({"target": target.numpy(), "prediction": prediction.numpy()})
    return Evaluation(
        metrics={"test": metrics},
        plot_tables={"adding_predictions": table},
        figures={"adding_predictions": _scatter(table, meta["seq_len"], mse)},
    )


def _evaluate_copy(logits: Tensor, target: Tensor, meta: dict[str, Any]) -> Evaluation:
    k = meta["copy_length"]
    cross_entropy = float(nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()))
    recalled = logits[:, -k:].argmax(-1) == target[:, -k:]  # (n, K)
    metrics = {
        "model": {
            "cross_entropy": cross_entropy,
            "recall_accuracy": float(recalled.float().mean()),
        },
        "baseline": {
            "cross_entropy": meta["baseline_cross_entropy"],
            "recall_accuracy": 1 / meta["n_symbols"],
        },
        "seq_len": meta["seq_len"],
        "sequences": len(target),
    }
    table = pd.DataFrame(
        {"position": np.arange(1, k + 1), "accuracy": recalled.float().mean(0).numpy()}
    )
    return Evaluation(metrics={"test": metrics}, plot_tables={"copy_recall": table})


def _scatter(table: pd.DataFrame, seq_len: int, mse: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(table["target"], table["prediction"], s=4, alpha=0.4)
    ax.plot([0, 2], [0, 2], color="black", lw=1)
    ax.axhline(1.0, color="tab:orange", ls="--", lw=1, label="baseline: always 1")
    ax.set(xlabel="target sum", ylabel="prediction", title=f"adding, T={seq_len}: MSE {mse:.4f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
