"""Byte-stable outputs: identical trainings give identical files, so dvc.lock never drifts."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline

REPO = Path(__file__).resolve().parents[1]
OUTS = ("models", "metrics", "plots", "predictions", "data/raw", "data/prepared")


def digests(root: Path) -> dict[str, str]:
    files = [p for out in OUTS for p in sorted((root / out).rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
@pytest.mark.reliability
def test_two_identical_runs_give_byte_identical_outputs(tmp_path, quick_cfg):
    cfg = quick_cfg("trainer.max_epochs=2", "trainer.num_threads=1", logger={"backend": "none"})
    first, second = RunPaths(tmp_path / "a"), RunPaths(tmp_path / "b")
    run_pipeline(cfg, first)
    run_pipeline(cfg, second)
    assert "models/model.pt" in digests(first.root)
    assert digests(first.root) == digests(second.root)


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_fresh_clone_reproduces_the_committed_lock(tmp_path):
    """`dvc repro` on a fresh clone reproduces every hash in the committed dvc.lock, so
    `dvc status` is clean and the lock is unchanged (a stale lock fails here)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True)

    repro = run("dvc", "repro")
    assert repro.returncode == 0, repro.stderr[-3000:]
    status = run("dvc", "status")
    assert "up to date" in status.stdout, status.stdout
    diff = run("git", "diff", "--exit-code", "dvc.lock")
    assert diff.returncode == 0, diff.stdout[-3000:]
