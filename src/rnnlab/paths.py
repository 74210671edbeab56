"""Where things live: the repository root and the per-run output layout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_ROOT_MARKERS = ("dvc.yaml", ".git")


def repo_root(start: Path | None = None) -> Path:
    """The project root that owns shared state such as ``mlflow.db``.

    ``DVC_ROOT`` wins: inside ``dvc exp run --queue`` the stages run in a temporary copy under
    ``.dvc/tmp/exps/``, and DVC points ``DVC_ROOT`` at the real repository so runs are not lost
    with the copy. Otherwise the nearest ancestor of ``start`` (default: cwd) that holds
    ``dvc.yaml`` or ``.git``; failing that, ``start`` itself.
    """
    if env_root := os.environ.get("DVC_ROOT"):
        return Path(env_root).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if any((candidate / marker).exists() for marker in _ROOT_MARKERS):
            return candidate
    return here


@dataclass(frozen=True)
class RunPaths:
    """The files one pipeline run reads and writes, relative to a working directory.

    DVC stages use the repository root (so the outs match ``dvc.yaml``); the Hydra app uses the
    job's output directory so sweep jobs never overwrite each other.
    """

    root: Path
    # Where data/raw and data/prepared live if not under root: a sweep's shared prepared copy
    # (rnnlab.data.cache), the same for every job with the same data settings.
    data_root: Path | None = None

    @property
    def raw_dir(self) -> Path:
        return (self.data_root or self.root) / "data" / "raw"

    @property
    def prepared_dir(self) -> Path:
        return (self.data_root or self.root) / "data" / "prepared"

    @property
    def model_dir(self) -> Path:
        return self.root / "models"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def predictions_dir(self) -> Path:
        return self.root / "predictions"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    @property
    def state_dir(self) -> Path:
        """Local state outside every hashed output (ignored by git and DVC)."""
        return self.root / ".rnnlab"

    @property
    def resume_dir(self) -> Path:
        """The resumable checkpoints (with optimizer state) of a training in progress; removed
        when it ends well, so ``models/`` holds weights only."""
        return self.state_dir / "resume"

    @property
    def run_info(self) -> Path:
        """Which MLflow run trained the model in ``models/`` (and that model's hash): kept out
        of ``models/`` so identical trainings give byte-identical model folders."""
        return self.state_dir / "run.json"

    @property
    def staging_parents(self) -> tuple[Path, ...]:
        """Where atomic writes stage their temporary folders and files."""
        return (self.root, self.root / "data", self.metrics_dir, self.plots_dir)
