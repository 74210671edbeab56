"""A misspelt override on the command line gets the project's did-you-mean, not Hydra's "+"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DID_YOU_MEAN = "Unknown config key `model.hiden_size`. Did you mean `model.hidden_size`?"


def env() -> dict[str, str]:
    src = str(REPO / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def test_hydra_app_names_the_closest_key(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "rnnlab.app", "model.hiden_size=32", "trainer.max_epochs=1"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert DID_YOU_MEAN in done.stderr
    assert "+model.hiden_size" not in done.stderr


@pytest.mark.slow
@pytest.mark.reliability
def test_dvc_exp_run_set_param_names_the_closest_key(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    done = subprocess.run(
        ["dvc", "exp", "run", "-S", "model.hiden_size=32"],
        cwd=clone,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert DID_YOU_MEAN in done.stdout + done.stderr
    assert "+model.hiden_size" not in done.stdout + done.stderr
