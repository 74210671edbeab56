"""Callbacks: the learning-curve history, plain progress lines for non-terminals, resume points
and stopping on a signal between batches."""

from __future__ import annotations

import csv
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping

from rnnlab.recovery import raise_held_signal


class History(pl.Callback):
    """Per-epoch train/val loss and learning rate; feeds the DVC learning-curve plot.

    Rows are also written to ``path`` after every epoch: with ``ddp_spawn`` training runs in
    child processes, and a file is what survives them. Epoch times are kept apart
    (``seconds``, for the log line): the file is part of the model folder, which must be
    byte-identical between identical runs. The rows travel in resumable checkpoints.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = []
        self.seconds: list[float] = []
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1}
        for key in ("train/loss", *sorted(k for k in metrics if k.startswith("val/"))):
            if key in metrics:
                row[key.replace("/", "_")] = float(metrics[key])
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        self.seconds.append(time.perf_counter() - self._started)
        if trainer.is_global_zero:
            with self.path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(self.rows[-1]))
                writer.writeheader()
                writer.writerows(self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])
        self.seconds = [float("nan")] * len(self.rows)  # times of the interrupted process


class ResumePoint(pl.Callback):
    """Saves everything a training needs to continue at the start of every epoch after the
    first, and restores it (``resume_from``) before the first epoch of a resumed training.

    At that point the epoch before is complete (learning-rate schedulers stepped) and this epoch
    has drawn no random numbers yet, so with the random states (torch, numpy, Python) a resumed
    training draws exactly what an uninterrupted one would: byte-identical results. The state is
    restored here rather than through Lightning's ``ckpt_path``, whose loop bookkeeping restarts
    an epoch-start checkpoint into an empty epoch. The file is replaced atomically and read with
    ``weights_only=True``.
    """

    def __init__(self, path: Path, resume_from: Path | None = None) -> None:
        self.path, self.resume_from = path, resume_from

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 0 or not trainer.is_global_zero:
            return
        numpy_state = np.random.get_state()
        state = {
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "batches_that_stepped": trainer.fit_loop.epoch_loop._batches_that_stepped,
            "model": pl_module.state_dict(),
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
            "callbacks": {c.state_key: c.state_dict() for c in trainer.callbacks},
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
                "python": random.getstate(),
            },
        }
        partial = self.path.with_name(f"{self.path.name}.partial")
        torch.save(state, partial)
        os.replace(partial, self.path)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resume_from is None:
            return
        state = torch.load(self.resume_from, map_location=pl_module.device, weights_only=True)
        pl_module.load_state_dict(state["model"])
        for optimizer, saved in zip(trainer.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for config, saved in zip(trainer.lr_scheduler_configs, state["schedulers"], strict=True):
            config.scheduler.load_state_dict(saved)
        for callback in trainer.callbacks:
            if callback.state_key in state["callbacks"]:
                callback.load_state_dict(state["callbacks"][callback.state_key])
        loop = trainer.fit_loop
        for counts in (loop.epoch_progress.current, loop.epoch_progress.total):
            counts.ready = counts.started = counts.processed = counts.completed = state["epoch"]
        step = loop.epoch_loop.automatic_optimization.optim_progress.optimizer.step.total
        step.ready = step.completed = state["global_step"]
        loop.epoch_loop._batches_that_stepped = state["batches_that_stepped"]
        kind, keys, *rest = state["rng"]["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        random.setstate(state["rng"]["python"])
        torch.set_rng_state(state["rng"]["torch"].cpu())


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
        parts.append(f"{self.history.seconds[-1]:.1f}s")
        print("  ".join(parts), flush=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


class OptunaPruning(pl.Callback):
    """Report the monitored validation loss to the trial each epoch; stop if the pruner says so.

    Stopping (rather than raising) lets the job finish like early stopping: its best checkpoint
    is evaluated and logged, and the sweeper marks the trial PRUNED from that attribute.
    Works in single-process training (the trial lives in rank 0 only).
    """

    def __init__(self, trial: Any, monitor: str, pruned_attr: str) -> None:
        self.trial, self.monitor, self.pruned_attr = trial, monitor, pruned_attr

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or score is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(score), epoch)
        if self.trial.should_prune():
            print(f"Optuna pruned trial {self.trial.number} at epoch {epoch}", flush=True)
            self.trial.set_user_attr(self.pruned_attr, epoch)
            trainer.should_stop = True


class StopOnSignal(pl.Callback):
    """Raises a SIGTERM/SIGINT held by ``recovery.signals_at_safe_points`` between batches."""

    def on_train_batch_end(self, *args: Any) -> None:
        raise_held_signal()

    def on_validation_batch_end(self, *args: Any) -> None:
        raise_held_signal()


class EarlyStoppingFrom(EarlyStopping):
    """Early stopping that starts watching ``start`` of the way through training (by the
    module's ``training_progress``, which follows ``trainer.max_time`` too). A cosine schedule
    spends its first half at a high learning rate, whose noisy validation loss trips the
    patience long before the decay does its work: a 104-epoch cosine run stopped after 29
    epochs at 7.5 % CER, a 52-epoch one after 23 at 7.3 % (docs/benchmarks.md)."""

    def __init__(self, *args: Any, start: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start = start

    def _should_skip_check(self, trainer: pl.Trainer) -> bool:
        if super()._should_skip_check(trainer):
            return True
        return self.start > 0 and trainer.lightning_module.training_progress() < self.start
