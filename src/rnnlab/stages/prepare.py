"""DVC stage `prepare`: raw data -> data/raw (as read) and data/prepared (filled, split, scaled)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rnnlab.data import prepare_task_data
from rnnlab.paths import RunPaths


def run_prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    return prepare_task_data(cfg, paths)


if __name__ == "__main__":
    from rnnlab.cli import run_stage

    run_stage(run_prepare)
