"""Data loading and preparation, free of torch, Lightning and MLflow so `prepare` starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rnnlab.paths import RunPaths


def read_prepared_meta(prepared_dir: Path, task: str) -> dict[str, Any]:
    """``meta.json`` of the prepared data, checked to belong to ``task``."""
    from rnnlab.errors import DataError
    from rnnlab.io import read_json

    meta_path = prepared_dir / "meta.json"
    if not meta_path.exists():
        raise DataError(
            f"{meta_path} not found; run the prepare stage first (`dvc repro prepare`)."
        )
    meta = read_json(meta_path)
    if meta.get("task") != task:
        raise DataError(
            f"{prepared_dir} holds data prepared for task {meta.get('task')!r}, not {task}; "
            f"run the prepare stage with task={task}."
        )
    return meta


def read_prepared_splits(
    prepared_dir: Path, task: str, splits: tuple[str, ...] = ("train", "val", "test")
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``meta.json`` (checked to belong to ``task``) and each split's ``<split>.npz`` arrays."""
    import numpy as np

    meta = read_prepared_meta(prepared_dir, task)
    arrays = {}
    for split in splits:
        with np.load(prepared_dir / f"{split}.npz", allow_pickle=False) as npz:
            arrays[split] = {key: npz[key] for key in npz.files}
    return meta, arrays


def prepare_task_data(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    """Write ``data/raw`` and ``data/prepared`` for the configured task; return a summary."""
    from rnnlab.tasks import get_spec

    return get_spec(cfg.task.name).prepare(cfg, paths)
