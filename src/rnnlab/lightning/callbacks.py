"""Callbacks: the learning-curve history and a plain one-line-per-epoch log for non-terminals."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytorch_lightning as pl


class History(pl.Callback):
    """Per-epoch train/val loss, learning rate and wall time; feeds the DVC learning-curve plot.

    Rows are also written to ``path`` after every epoch: with ``ddp_spawn`` training runs in
    child processes, and a file is what survives them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1, "seconds": time.perf_counter() - self._started}
        for key in ("train/loss", "val/loss"):
            if key in metrics:
                row[key.replace("/", "_")] = float(metrics[key])
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        if trainer.is_global_zero:
            with self.path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(self.rows[-1]))
                writer.writeheader()
                writer.writerows(self.rows)


class EpochLine(pl.Callback):
    """Prints one readable line per epoch: progress bars garble logs that are not terminals."""

    def __init__(self, history: History) -> None:
        self.history = history

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history.rows:
            return
        row = self.history.rows[-1]
        parts = [f"epoch {row['epoch']:>3}/{trainer.max_epochs}"]
        parts += [f"{k}={row[k]:.4f}" for k in ("train_loss", "val_loss") if k in row]
        parts.append(f"{row['seconds']:.1f}s")
        print("  ".join(parts), flush=True)
