"""Shared helpers of the benchmark scripts: options, machine facts, Markdown, fresh processes,
sweeps read back from MLflow. No torch import at module level, so `--help` stays instant."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def machine_info() -> dict[str, Any]:
    import torch

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return {
        "niceness": os.nice(0),
        "cpu_model": models[0] if models else platform.processor(),
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


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    """A target's verdict cell: a miss stands out."""
    return "met" if ok else "**not met**"


def quiet_lightning() -> None:
    """Silence Lightning's per-run info lines and the small-dataset warnings."""
    import pytorch_lightning  # noqa: F401  (its __init__ sets its logger to INFO: import first)

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="pytorch_lightning")


def write_json(path: str | Path | None, payload: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the project's venv first on PATH, no DVC_ROOT."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}
    env.pop("DVC_ROOT", None)
    return env


def python() -> str:
    """The project's interpreter if present, else the running one."""
    candidate = VENV_BIN / "python"
    return str(candidate) if candidate.exists() else sys.executable


def sigterm_exits() -> None:
    """Let SIGTERM unwind like Ctrl-C, so children are stopped and temporary files removed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def options(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with what every benchmark takes: --quick, --json, --nice, and the
    hidden --worker of the scripts that measure in fresh processes (``fresh_process``)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a seconds-long smoke run (figures not for the docs)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    add_nice_option(parser)
    parser.add_argument("--worker", type=json.loads, help=argparse.SUPPRESS)
    return parser


def add_nice_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness increment (negative needs root)"
    )


def apply_nice(increment: int) -> int:
    """``os.nice(increment)``; returns the niceness now in effect (unchanged if not allowed)."""
    if increment:
        try:
            os.nice(increment)
        except PermissionError:
            print(f"warning: cannot apply nice {increment}; running as is", file=sys.stderr)
    return os.nice(0)


def start(args: argparse.Namespace) -> dict[str, Any]:
    """Apply --nice, let SIGTERM clean up, and return the machine facts."""
    apply_nice(args.nice)
    sigterm_exits()
    return machine_info()


def finish(info: dict[str, Any], text: str, json_path: str | None, payload: dict) -> None:
    """Print the machine line and the Markdown results; write the JSON results if asked."""
    print(machine_line(info))
    print(text)
    write_json(json_path, {"machine": info, **payload})


def fresh_process(
    script: str,
    spec: dict[str, Any],
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    echo: bool = False,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """``script --worker SPEC`` in a new interpreter (for process-global settings, a clean
    peak memory, or a log read through a pipe as under DVC). Returns the JSON the worker wrote
    to its ``--json`` path, plus ``cpu_s`` (the child's user + system time, ``os.wait4``) and
    ``longest_silence_s`` (the longest wait between two lines of its output)."""
    with tempfile.TemporaryDirectory(prefix="rnnlab-worker-") as tmp:
        out = Path(tmp) / "result.json"
        command = [python(), script, "--worker", json.dumps(spec), "--json", str(out)]
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env={**(env or child_env()), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a timeout or Ctrl-C takes the whole group down
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                os.killpg(child.pid, signal.SIGKILL)

        timer = threading.Timer(timeout or 0, kill)
        if timeout:
            timer.start()
        lines, last, longest = [], time.monotonic(), 0.0
        try:
            for line in child.stdout or []:
                now = time.monotonic()
                longest, last = max(longest, now - last), now
                lines.append(line)
                if echo:
                    print(line, end="", flush=True)
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if timed_out.is_set() and os.WIFSIGNALED(status):
            raise subprocess.TimeoutExpired(command, timeout)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"worker failed ({spec}):\n{''.join(lines[-40:])}")
        result = json.loads(out.read_text())
    cpu_s = usage.ru_utime + usage.ru_stime
    return {**result, "cpu_s": round(cpu_s, 2), "longest_silence_s": round(longest, 1)}


def hydra_multirun(overrides: Sequence[str], scratch: Path, cwd: Path = REPO) -> float:
    """``python -m rnnlab.app -m`` into ``scratch`` (its own ``mlflow.db`` and ``multirun/``),
    one torch thread per process, no logged models; returns the wall time in seconds."""
    command = [python(), "-m", "rnnlab.app", "-m", *overrides, "logger.log_model=false"]
    command.append(f"hydra.sweep.dir={scratch / 'multirun'}")
    env = child_env(MLFLOW_TRACKING_URI=tracking_uri(scratch), OMP_NUM_THREADS="1")
    print("$", " ".join(command[1:]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=sys.stderr)
    return time.perf_counter() - started


def tracking_uri(scratch: Path) -> str:
    return f"sqlite:///{scratch / 'mlflow.db'}"


def finished_runs(scratch: Path, experiment: str, metric: str) -> Any:
    """The latest sweep's finished training runs in ``scratch/mlflow.db`` that logged
    ``metric``, as ``rnnlab.report`` reads them (``param:<key>`` columns and metrics)."""
    from mlflow import MlflowClient

    from rnnlab.report import load_runs

    runs, _ = load_runs(MlflowClient(tracking_uri(scratch)), experiment, "latest")
    return runs[(runs["status"] == "FINISHED") & runs[metric].notna()].reset_index(drop=True)
