"""One prepared copy per distinct data setting in a sweep, shared by its jobs.

Sweep jobs that differ only in model or training settings would each prepare the same data
(raw copies and prepared arrays in every job folder). Instead the Hydra app points their data
folders at ``<sweep dir>/prepared_data/<key>/``, where ``key`` hashes what ``prepare`` reads:
the task name, the ``data`` section, the seed (splits are seeded) and the bytes of the user's
input files. The first job to get the lock prepares; the others wait and reuse it. Preparers
must read nothing else from the config, or the key would miss it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.data.sources import resolve_user_path
from rnnlab.io import read_json, write_json
from rnnlab.paths import RunPaths

CACHE_DIR = "prepared_data"
INPUT_KEYS = ("path", "test_path")  # data settings that name user files


def data_key(cfg: DictConfig, root: Path) -> str:
    """A hash of everything ``prepare`` reads, including the content of the input files."""
    inputs = {}
    for key in INPUT_KEYS:
        if OmegaConf.select(cfg, f"data.{key}"):
            path = resolve_user_path(cfg.data[key], root, key)
            inputs[key] = _file_sha256(path) if path.is_file() else str(path)
    described = {
        "task": cfg.task.name,
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "seed": cfg.seed,
        "inputs": inputs,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def shared_paths(cfg: DictConfig, output_dir: Path, sweep_dir: Path) -> RunPaths:
    """The job's paths with its data folders in the sweep's shared cache."""
    return RunPaths(output_dir, data_root=sweep_dir / CACHE_DIR / data_key(cfg, output_dir))


def prepare_once(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    """Prepare into ``paths.data_root`` unless another job already has; safe between parallel
    jobs (an exclusive file lock around the check and the preparation)."""
    from rnnlab.data import prepare_task_data

    root = paths.data_root
    root.parent.mkdir(parents=True, exist_ok=True)
    done = root / "prepare.json"
    with _locked(root.parent / f"{root.name}.lock"):
        if not done.exists():
            write_json(done, prepare_task_data(cfg, paths))
    # The job folder still shows the data it trained on (`<job>/data/prepared`), without a copy.
    link = paths.root / "data"
    if not link.exists():
        paths.root.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root / "data", paths.root), target_is_directory=True)
    return read_json(done)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
