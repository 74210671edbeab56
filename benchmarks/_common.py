"""Shared helpers for the benchmark scripts: machine facts, statistics, Markdown, quiet Lightning.

Kept free of torch/Lightning imports at module level so `--help` stays instant.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def cpu_model() -> str:
    """``Model name`` from ``lscpu`` (falls back to /proc/cpuinfo, then platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    import torch

    return {
        "niceness": os.nice(0),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"Machine: {info['cpu_model']}, {info['cpu_cores']} CPU cores, torch {info['torch']} "
        f"({info['torch_threads']} threads), Python {info['python']}; "
        f"1-min load average at start {info['load_avg_1m']}"
        + (f"; run at niceness {info['niceness']}." if info.get("niceness") else ".")
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """``min–max`` of the repeats, for the tables."""
    return f"{min(values):.3f}–{max(values):.3f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def quiet_lightning() -> None:
    """Silence Lightning's per-run info lines and the small-dataset warnings.

    Import Lightning first: its ``__init__`` sets its logger to INFO.
    """
    import pytorch_lightning  # noqa: F401

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="pytorch_lightning")


def verdict(ok: bool) -> str:
    """A target's verdict cell: a miss stands out."""
    return "met" if ok else "**not met**"


def write_json(path: str | Path | None, payload: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def child_env() -> dict[str, str]:
    """The environment for child processes: the project's venv first on PATH, no DVC_ROOT."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("DVC_ROOT", None)
    return env


def python() -> str:
    """The project's interpreter if present, else the running one."""
    candidate = VENV_BIN / "python"
    return str(candidate) if candidate.exists() else sys.executable


def sigterm_exits() -> None:
    """Let SIGTERM unwind like Ctrl-C, so children are stopped and temporary files removed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def add_nice_option(parser: Any) -> None:
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="change this process's (and its children's) scheduling priority, e.g. -10 to "
        "crowd out concurrent work on a shared machine (negative values need root)",
    )


def apply_nice(increment: int) -> int:
    """``os.nice(increment)``; returns the niceness now in effect (unchanged if not allowed)."""
    if increment:
        try:
            os.nice(increment)
        except PermissionError:
            print(f"warning: cannot apply nice {increment}; running as is", file=sys.stderr)
    return os.nice(0)


def hydra_multirun(overrides: Sequence[str], scratch: Path, cwd: Path = REPO) -> float:
    """``python -m rnnlab.app -m`` into ``scratch`` (its own ``mlflow.db`` and ``multirun/``),
    one torch thread per process, no logged models; returns the wall time in seconds."""
    command = [
        python(),
        "-m",
        "rnnlab.app",
        "-m",
        *overrides,
        "logger.log_model=false",
        f"hydra.sweep.dir={scratch / 'multirun'}",
    ]
    env = {
        **child_env(),
        "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
    }
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True)
    return time.perf_counter() - started


def finished_runs(scratch: Path, experiment: str, metric: str) -> list[Any]:
    """Finished training runs in ``scratch/mlflow.db`` that logged ``metric``, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{scratch / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    done = (r for r in runs if r.info.status == "FINISHED" and metric in r.data.metrics)
    return sorted(done, key=lambda r: r.info.start_time)
