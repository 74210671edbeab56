"""Data loading and preparation, free of torch, Lightning and MLflow so `prepare` starts fast."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from omegaconf import DictConfig

from rnnlab.errors import ConfigError
from rnnlab.paths import RunPaths

# task name -> module with ``prepare(cfg, paths) -> summary``; imported lazily.
PREPARERS: dict[str, str] = {
    "forecast": "rnnlab.data.forecast",
    "lm": "rnnlab.data.lm",
    "seq2seq": "rnnlab.data.seq2seq",
    "longrange": "rnnlab.data.longrange",
    "classify": "rnnlab.data.classify",
}


def prepare_task_data(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    """Write ``data/raw`` and ``data/prepared`` for the configured task; return a summary."""
    if cfg.task.name not in PREPARERS:
        raise ConfigError(f"Unknown task {cfg.task.name!r}; choose one of {sorted(PREPARERS)}.")
    return import_module(PREPARERS[cfg.task.name]).prepare(cfg, paths)
