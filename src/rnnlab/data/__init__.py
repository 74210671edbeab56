"""Data loading and preparation, free of torch, Lightning and MLflow so `prepare` starts fast."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


def write_prepared(
    paths: RunPaths,
    meta: dict[str, Any],
    splits: dict[str, dict[str, Any]],
    raw: dict[str, str | bytes | Path] | None = None,
    files: dict[str, str | Path] | None = None,
    arrays: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The end of every ``prepare``, once all input has been checked.

    ``data/raw`` gets the ``raw`` files (as read or generated; none: left alone) and
    ``data/prepared`` gets ``<split>.npz`` with each split's arrays, any other text ``files``,
    each of ``arrays`` as ``<name>.npy`` (read back memory-mapped, ``rnnlab.data.arrays``) and
    ``meta.json``; each directory is replaced whole, so an error leaves earlier results in place.
    A ``Path`` among ``raw``, ``files`` or ``arrays`` is a file written already (streamed, larger
    than memory, in a ``prepare_scratch`` folder): it is moved in. ``meta`` gains
    ``raw_sha256``, the hash of the raw files, unless it brings its own. Returns the meta
    written; ``read_prepared_splits`` reads it all back.
    """
    import hashlib
    import os

    import numpy as np

    from rnnlab.io import atomic_dir, write_json

    raw = raw or {}
    contents = {name: c.encode("utf-8") if isinstance(c, str) else c for name, c in raw.items()}
    digest = hashlib.sha256()
    for content in contents.values():
        if isinstance(content, Path):
            with open(content, "rb") as file:
                while block := file.read(1 << 20):
                    digest.update(block)
        else:
            digest.update(content)
    meta = {**meta, "raw_sha256": meta.get("raw_sha256", digest.hexdigest())}
    if contents:
        with atomic_dir(paths.raw_dir) as raw_dir:
            for name, content in contents.items():
                if isinstance(content, Path):
                    os.replace(content, raw_dir / name)
                else:
                    (raw_dir / name).write_bytes(content)
    with atomic_dir(paths.prepared_dir) as out:
        for split, split_arrays in splits.items():
            np.savez(out / f"{split}.npz", **split_arrays)
        for name, array in (arrays or {}).items():
            if isinstance(array, Path):
                os.replace(array, out / f"{name}.npy")
            else:
                np.save(out / f"{name}.npy", array)
        for name, text in (files or {}).items():
            if isinstance(text, Path):
                os.replace(text, out / name)
            else:
                (out / name).write_text(text, encoding="utf-8")
        write_json(out / "meta.json", meta)
    return meta


@contextmanager
def prepare_scratch(paths: RunPaths) -> Iterator[Path]:
    """A scratch folder beside ``data/prepared`` (same file system, so its files move into
    ``write_prepared`` without a copy), removed afterwards; a killed process's is removed on
    the next start (its name is a temp name, ``rnnlab.recovery``)."""
    import shutil
    import tempfile

    from rnnlab.recovery import temp_prefix

    paths.prepared_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=temp_prefix("scratch"), dir=paths.prepared_dir.parent)
    try:
        yield Path(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
