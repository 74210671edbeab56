"""Shared fixtures: validated configs composed from ``conf/``, optionally pointing at a CSV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf

from rnnlab import config


def _compose_validated(overrides: list[str] | None = None) -> DictConfig:
    return config.validate(config.compose(overrides or []))


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    """``compose_cfg(["model=gru", ...])`` -> the validated composition of ``conf/``."""
    return _compose_validated


@pytest.fixture
def csv_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``csv_cfg(frame, overrides=[...], **data)`` writes ``frame`` to a CSV under ``tmp_path``
    and returns a validated ``data=csv`` config whose ``data.path`` is that (absolute) file.

    ``frame`` may also be ``str``/``bytes`` (written verbatim) or ``None`` (no file is written).
    Keyword arguments replace ``data.*`` values; they are set on the composed dict rather than
    passed as Hydra overrides, so paths and lists need no quoting.
    """

    def make(
        frame: pd.DataFrame | str | bytes | None,
        *,
        overrides: list[str] | None = None,
        filename: str = "series.csv",
        **data: Any,
    ) -> DictConfig:
        path = tmp_path / "input" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(frame, pd.DataFrame):
            frame.to_csv(path, index=False)
        elif isinstance(frame, str):
            path.write_text(frame, encoding="utf-8")
        elif isinstance(frame, bytes):
            path.write_bytes(frame)
        raw = OmegaConf.to_container(config.compose(["data=csv", *(overrides or [])]))
        raw["data"].update({"path": str(path), **data})
        return config.validate(raw)

    return make


@pytest.fixture
def untrained_model_dir(tmp_path: Path) -> Callable[..., Path]:
    """``untrained_model_dir(["model=gru", ...])`` -> a model directory as train writes it
    (config, metadata with the scaler, weights) for data prepared from the composed config,
    with freshly initialised weights: real shapes and preprocessing, no training time."""
    from rnnlab.data import prepare_task_data
    from rnnlab.model_store import save_trained
    from rnnlab.paths import RunPaths
    from rnnlab.tasks import get_task

    def make(overrides: list[str] | None = None, name: str = "job") -> Path:
        import torch

        cfg = _compose_validated(["experiment=quick", *(overrides or [])])
        paths = RunPaths(tmp_path / name)
        prepare_task_data(cfg, paths)
        task = get_task(cfg.task.name)
        torch.manual_seed(cfg.seed)
        meta = task.load_data(cfg, paths).meta
        paths.model_dir.mkdir(parents=True)
        save_trained(paths.model_dir, cfg, meta, task.build_model(cfg, meta))
        return paths.model_dir

    return make
