"""The whole pipeline in one process: prepare -> train -> evaluate (the Hydra app's job)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from rnnlab.paths import RunPaths


def run_pipeline(cfg: DictConfig, paths: RunPaths, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """``callbacks``: extra Lightning callbacks for training (an Optuna trial's pruning)."""
    from rnnlab.lightning import is_primary_process
    from rnnlab.stages.evaluate import run_evaluate
    from rnnlab.stages.prepare import run_prepare
    from rnnlab.stages.train import run_train

    if not is_primary_process():  # a DDP worker: rank 0 has prepared the data already
        return {"train": run_train(cfg, paths)}
    if paths.data_root is not None:  # a sweep job: the data may be prepared already
        from rnnlab.data.cache import prepare_once

        prepared = prepare_once(cfg, paths)
    else:
        prepared = run_prepare(cfg, paths)
    trained = run_train(cfg, paths, callbacks)
    tested = run_evaluate(cfg, paths)
    return {"prepare": prepared, "train": trained, "evaluate": tested}
