"""The Trainer factory: accelerator, precision, clipping, early stopping, best checkpoint."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar

from rnnlab.config import max_time
from rnnlab.lightning import external_launch
from rnnlab.lightning.callbacks import (
    EarlyStoppingFrom,
    EpochLine,
    History,
    ResumePoint,
    StopOnSignal,
)
from rnnlab.lightning.grad_flow import GradientFlow

RESUME_CHECKPOINT = "last.ckpt"
# With a cosine schedule early stopping waits for the decay's second half (EarlyStoppingFrom).
COSINE_EARLY_STOPPING_START = 0.5


def configure_cpu(trainer_cfg: DictConfig) -> None:
    """CPU settings measured in docs/benchmarks.md (denormals slow recurrent nets; two torch
    threads run 14x slower than one while another process holds a core; glibc returning every
    large buffer to the OS made half of an LSTM's CPU time kernel time)."""
    if trainer_cfg.num_threads is not None:
        torch.set_num_threads(trainer_cfg.num_threads)
    torch.set_flush_denormal(trainer_cfg.flush_denormal)
    torch.backends.mkldnn.enabled = trainer_cfg.mkldnn
    if trainer_cfg.keep_freed_memory:
        keep_freed_memory()


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, glibc's <malloc.h>


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    By default every buffer above the mmap threshold (a training step's activations) is a fresh
    ``mmap`` and ``munmap``, so each step page-faults all of it in again: at lookback 336 that
    was 45 % of an LSTM's CPU time. ``MALLOC_*`` environment variables would have to be set
    before the process starts; ``mallopt`` changes the running allocator. Returns False where
    the C library is not glibc (nothing to do there).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # No mmap'd chunks at all (large ones come from the heap too), and never trim the heap.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


class _DropLightningTips(logging.Filter):
    """Lightning's advertising lines (the litlogger tip), not diagnostics."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip:")


def silence_known_noise() -> None:
    """Drop the lines every run printed that say nothing about it, each by its exact message:
    Lightning's litlogger tip, the FutureWarning torch raises inside Lightning's own pytree
    helper (``isinstance(treespec, LeafSpec)``), and MLflow's artifact download bar."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTips) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLightningTips())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def build_trainer(
    trainer_cfg: DictConfig,
    output_dir: Path,
    logger: Any,
    monitor: str = "val/loss",
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    extra_callbacks: Sequence[pl.Callback] = (),
) -> tuple[pl.Trainer, ModelCheckpoint]:
    """A Trainer writing the history and gradient flow to ``output_dir`` and checkpoints (best,
    and ``last.ckpt`` to resume from, both with optimizer state) to ``checkpoint_dir``;
    ``resume_from``: a ``last.ckpt`` to continue from; ``extra_callbacks``: e.g. an Optuna
    trial's pruning."""
    silence_known_noise()
    if trainer_cfg.deterministic:
        # cuBLAS needs this to honour deterministic algorithms on GPUs; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    checkpoint_dir = checkpoint_dir or output_dir
    history = History(output_dir / "history.csv")
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir, filename="best", monitor=monitor, mode="min", save_top_k=1
    )
    interactive = sys.stdout.isatty()
    callbacks: list[pl.Callback] = [
        history,
        checkpoint,
        ResumePoint(checkpoint_dir / RESUME_CHECKPOINT, resume_from),
        EarlyStoppingFrom(
            monitor=monitor,
            mode="min",
            patience=trainer_cfg.early_stopping_patience,
            start=COSINE_EARLY_STOPPING_START if trainer_cfg.scheduler.name == "cosine" else 0.0,
        ),
        RichProgressBar() if interactive else EpochLine(history),
        StopOnSignal(),
    ]
    if trainer_cfg.grad_flow_batches > 0:
        callbacks.append(GradientFlow(output_dir, trainer_cfg.grad_flow_batches))
    callbacks.extend(extra_callbacks)
    strategy, devices, num_nodes = _processes(trainer_cfg)
    trainer = pl.Trainer(
        max_epochs=trainer_cfg.max_epochs,
        max_time=max_time(trainer_cfg),
        accelerator=trainer_cfg.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=trainer_cfg.precision,
        gradient_clip_val=trainer_cfg.gradient_clip_val,
        gradient_clip_algorithm=trainer_cfg.gradient_clip_algorithm,
        deterministic=trainer_cfg.deterministic,
        # None (Lightning's "all batches") instead of 1.0, which prints a note on every run
        limit_train_batches=trainer_cfg.limit_train_batches
        if trainer_cfg.limit_train_batches != 1.0
        else None,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=interactive,
        enable_model_summary=interactive,
        log_every_n_steps=1,
        default_root_dir=checkpoint_dir,
    )
    return trainer, checkpoint


def _processes(trainer_cfg: DictConfig) -> tuple[str, Any, int]:
    """Strategy, devices per node and nodes: the config's, unless torchrun or srun started the
    processes already; then those counts, and ``ddp_spawn`` joins them as ``ddp`` (spawning
    more processes inside each would multiply them)."""
    launched = external_launch()
    if launched is None:
        return trainer_cfg.strategy, trainer_cfg.devices, trainer_cfg.num_nodes
    strategy = "ddp" if trainer_cfg.strategy == "ddp_spawn" else trainer_cfg.strategy
    return strategy, *launched
