"""Resumable training: the checkpoint folder of a training in progress, and whether it fits.

The folder (``RunPaths.resume_dir``, outside ``models/``) holds Lightning's checkpoints with
optimizer state (``checkpoints/best.ckpt``, and ``last.ckpt`` from ``ResumePoint``) and
``state.json``: a
fingerprint of the config and data it belongs to and the MLflow run it logs to. A later start
with the same fingerprint continues from ``last.ckpt`` in the same run; anything else starts
afresh. The folder is removed when training ends well, so only interrupted trainings keep one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.io import read_json, write_json
from rnnlab.lightning.trainer import RESUME_CHECKPOINT

STATE = "state.json"
# Settings that do not change what a resumed training computes.
_NOT_FINGERPRINTED = ("resume", "max_time")


def fingerprint(cfg: DictConfig, meta: dict[str, Any]) -> str:
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in _NOT_FINGERPRINTED:
        config["trainer"].pop(key, None)
    text = json.dumps({"config": config, "data": meta}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Resumable:
    directory: Path
    fingerprint: str

    def _state(self) -> dict[str, Any] | None:
        path = self.directory / STATE
        try:
            state = read_json(path) if path.exists() else None
        except json.JSONDecodeError:  # written atomically, but be safe
            return None
        return state if state and state.get("fingerprint") == self.fingerprint else None

    @property
    def checkpoints(self) -> Path:
        """Where Lightning writes (a folder of its own: it warns about any other file)."""
        return self.directory / "checkpoints"

    def checkpoint(self) -> Path | None:
        """``last.ckpt`` of an interrupted training of this very config and data, if any."""
        last = self.checkpoints / RESUME_CHECKPOINT
        return last if self._state() is not None and last.exists() else None

    def run(self) -> dict[str, Any] | None:
        """The MLflow run the interrupted training logged to."""
        state = self._state()
        return state.get("run") if state else None

    def begin(self, run: dict[str, Any] | None, resuming: bool) -> None:
        """Start afresh (wiping what another config left) or keep the folder to resume."""
        if not resuming:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(self.directory / STATE, {"fingerprint": self.fingerprint, "run": run})

    def finish(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
