"""Callbacks: the learning-curve history and plain progress lines for non-terminals."""

from __future__ import annotations

import csv
import math
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


HEARTBEAT_SECONDS = 20.0  # within an epoch, a progress line at least this often (non-terminals)


class EpochLine(pl.Callback):
    """Readable progress for logs that are not terminals (progress bars garble them): one line
    per epoch, and within an epoch a line every ``HEARTBEAT_SECONDS`` with the step, the
    running training loss, the throughput and the time the epoch still needs."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._started = self._last = time.monotonic()
        self._loss, self._steps = 0.0, 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = self._last = time.monotonic()
        self._loss, self._steps = 0.0, 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss, self._steps = self._loss + float(loss), self._steps + 1
        now = time.monotonic()
        if now - self._last < HEARTBEAT_SECONDS or not trainer.is_global_zero:
            return
        self._last = now
        done, total = batch_idx + 1, trainer.num_training_batches
        per_second = done / max(now - self._started, 1e-9)
        rows = len(batch["x"]) if isinstance(batch, dict) and "x" in batch else 1
        parts = [
            f"epoch {trainer.current_epoch + 1:>3}/{trainer.max_epochs}",
            f"step {done}/{total}",
            f"train_loss={self._loss / max(self._steps, 1):.4f}",
            f"{per_second * rows:.0f} examples/s",
        ]
        if math.isfinite(total):
            parts.append(f"epoch ETA {_clock((total - done) / per_second)}")
        print("  ".join(parts), flush=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history.rows:
            return
        row = self.history.rows[-1]
        parts = [f"epoch {row['epoch']:>3}/{trainer.max_epochs}"]
        parts += [f"{k}={row[k]:.4f}" for k in ("train_loss", "val_loss") if k in row]
        parts.append(f"{row['seconds']:.1f}s")
        print("  ".join(parts), flush=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
