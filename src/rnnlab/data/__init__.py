"""Data loading and preparation, free of torch, Lightning and MLflow so `prepare` starts fast."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rnnlab.errors import ConfigError
from rnnlab.paths import RunPaths


def prepare_task_data(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    """Write ``data/raw`` and ``data/prepared`` for the configured task; return a summary."""
    if cfg.task.name == "forecast":
        from rnnlab.data.forecast import prepare

        return prepare(cfg, paths)
    raise ConfigError(f"Unknown task {cfg.task.name!r}; choose one of ['forecast'].")
