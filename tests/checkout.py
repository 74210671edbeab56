"""For tests that use the project as a user would: a copy of the checkout, the DVC stage scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def copy_checkout(dest: Path) -> Path:
    """The tracked and new files of this checkout (symlinks kept), as a fresh clone has them."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in listed:
        source, target = REPO / rel, dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)
    return dest


def stage_env(**extra: str) -> dict[str, str]:
    """This checkout's source first on the path, one torch thread, plus ``extra``."""
    path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def stage_command(name: str) -> list[str]:
    return [sys.executable, "-m", f"rnnlab.stages.{name}"]


def run_stage(root: Path, name: str, env: dict[str, str] | None = None, **kwargs: Any):
    """``python -m rnnlab.stages.<name>`` in ``root``, output captured."""
    return subprocess.run(
        stage_command(name),
        cwd=root,
        env=env or stage_env(),
        capture_output=True,
        text=True,
        **kwargs,
    )
