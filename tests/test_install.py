"""rnnlab installed as a package (not editable, not from a checkout) runs from any directory:
the wheel carries conf/ (src/rnnlab/conf is a symlink to it in the repository)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from checkout import copy_checkout

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_installed_package_trains_from_another_directory(tmp_path: Path) -> None:
    source = copy_checkout(tmp_path / "source")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    # The dependencies come from this environment's site-packages (a plain path: its editable
    # rnnlab hook is not processed); rnnlab itself only from the wheel installed below.
    site = Path(sysconfig.get_paths(vars={"base": str(venv)})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    _run([*pip, "--no-index", str(source)], tmp_path)

    elsewhere = tmp_path / "elsewhere"  # no .git, no dvc.yaml, no conf/
    elsewhere.mkdir()
    where = _run([str(python), "-c", "import rnnlab; print(rnnlab.__file__)"], elsewhere)
    assert str(site) in where.stdout
    helped = _run([str(venv / "bin" / "rnnlab-train"), "--help"], elsewhere)
    assert "model: " in helped.stdout and "task: " in helped.stdout  # config groups from conf/
    _run(
        [
            str(venv / "bin" / "rnnlab-train"),
            "experiment=quick",
            "logger=none",
            "trainer.max_epochs=1",
            "trainer.num_threads=1",
            "hydra.run.dir=run",
        ],
        elsewhere,
    )
    test = json.loads((elsewhere / "run/metrics/test.json").read_text())
    assert test["test"]["model"]["mase"] > 0
