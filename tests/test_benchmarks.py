"""Every benchmark script still runs: its ``--quick`` mode, end to end, in a fresh process.

Parametrised over the files in benchmarks/, so a new script is covered (and must have
``--quick``) without touching this file. Figures are not checked here: they belong to
docs/benchmarks.md; a quick run only proves that the command behind them still works.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_mode_runs(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)  # each script keeps its runs in its own scratch store
    env.pop("DVC_ROOT", None)
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(tmp_path / "out.json")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "unrecognized arguments: --quick" not in done.stderr, f"{script} has no --quick mode"
    assert done.returncode == 0, f"{script} --quick failed:\n{done.stderr[-4000:]}"
    assert done.stdout.strip(), f"{script} --quick printed no results"
    assert (tmp_path / "out.json").stat().st_size > 0
