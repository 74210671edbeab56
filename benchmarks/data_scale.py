"""Data larger than memory: peak memory and throughput of `prepare` and training at 1x, 10x
and 100x the embedded data.

Forecast: the CO2 series (its 59 gaps interpolated) tiled ``s`` times with N(0, 0.1 ppm)
noise, written as an hourly CSV (pandas' timestamps end in 2262, so weekly dates could not
reach 100x), ``data.seasonal_period=52`` as for CO2; the default model (segrnn). LM: the
pydoc_topics text repeated ``s`` times as a text file; a 1x64 LSTM (the data size matters
here, not the model). For every task and size, ``run_prepare`` and then ``run_train`` (one
epoch cut to ``--steps`` training batches, then the whole validation pass and the model
saved, as the stage does it) each run in a fresh child process, one torch thread, no MLflow.

Peak RSS is the child's ``VmHWM`` (``/proc/self/status``, read as it ends): its
``ru_maxrss`` would not do, because Linux carries the maximum over ``exec`` and the child
starts as a fork of this (larger) process. File pages of the memory-mapped arrays count in
it. CPU-seconds are the child's user + system time (``os.wait4``). Throughput: windows
(forecast) or characters (LM) of the timed training batches per CPU-second of those batches.
Target: peak RSS at 100x <= 1.2x the peak at 1x, for each task and stage. Evaluation is not
measured (see docs/architecture.md for what it still stacks).

    python benchmarks/data_scale.py [--sizes 1 10 100] [--steps 100] [--quick] [--nice 10]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    child_env,
    machine_line,
    md_table,
    parser_with_common_options,
    python,
    quiet_lightning,
    start,
    verdict,
    write_json,
)

RSS_TARGET = 1.2  # peak RSS at the largest size / at 1x
TASKS = ("forecast", "lm")
STAGES = ("prepare", "train")


def overrides(task: str, source: Path) -> list[str]:
    common = ["logger=none", "trainer.max_epochs=1", "trainer.num_threads=1"]
    common += ["trainer.grad_flow_batches=0", "trainer.resume=false"]
    if task == "forecast":
        return [*common, "data=csv", f"data.path={source}", "data.target_columns=[co2]",
                "data.seasonal_period=52"]  # fmt: skip
    return [*common, "task=lm", "data=text_file", f"data.path={source}", "model.hidden_size=64"]


def write_source(task: str, size: int, folder: Path) -> tuple[Path, int]:
    """The ``size``-times data file for ``task``; returns it and its rows (or characters)."""
    import numpy as np
    import pandas as pd

    if task == "forecast":
        from statsmodels.datasets import co2

        series = co2.load_pandas().data["co2"].interpolate().to_numpy()
        values = np.tile(series, size) + np.random.default_rng(size).normal(
            0, 0.1, size * len(series)
        )
        times = pd.date_range("1958-03-29", periods=len(values), freq="h")
        path = folder / "co2_tiled.csv"
        pd.DataFrame({"date": times, "co2": values.round(3)}).to_csv(path, index=False)
        return path, len(values)
    from rnnlab.data.lm import pydoc_topics_text

    text = pydoc_topics_text()
    path = folder / "corpus.txt"
    with open(path, "w", encoding="utf-8", newline="") as file:
        for _ in range(size):
            file.write(text)
    return path, size * len(text)


def run_child(stage: str, task: str, size: int, root: Path, source: Path, steps: int) -> dict:
    """One stage in a fresh process: its result, peak RSS and CPU time (``os.wait4``)."""
    command = [python(), __file__, "--child", stage, task, str(root), str(source), str(steps)]
    env = {**child_env(), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} of {task} at {size}x failed (exit {proc.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    return {
        **result,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }


def peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``), in MiB."""
    status = Path("/proc/self/status").read_text().splitlines()
    kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return round(kib / 1024, 1)


def child(stage: str, task: str, root: Path, source: Path, steps: int) -> dict[str, Any]:
    from rnnlab import config
    from rnnlab.paths import RunPaths

    keys = overrides(task, source)
    cfg = config.validate(config.compose(keys))
    paths = RunPaths(root)
    if stage == "prepare":
        from rnnlab.stages.prepare import run_prepare

        return {"summary": run_prepare(cfg, paths)}
    from rnnlab.stages.train import run_train
    from rnnlab.tasks import get_task

    quiet_lightning()
    train = get_task(task).load_data(cfg, paths).train  # mapped: opening it reads nothing
    fraction = min(1.0, (steps + 0.5) / math.ceil(len(train) / cfg.trainer.batch_size))
    cfg = config.validate(config.compose([*keys, f"trainer.limit_train_batches={fraction}"]))
    timer = batch_timer()
    run_train(cfg, paths, callbacks=[timer])
    per_batch = cfg.trainer.batch_size * (cfg.task.bptt if task == "lm" else 1)
    return {
        "steps": timer.steps,
        "timed_cpu_seconds": round(timer.cpu, 3),
        "throughput": round((timer.steps - 1) * per_batch / timer.cpu, 1),
        "unit": "chars/CPU-s" if task == "lm" else "windows/CPU-s",
    }


def batch_timer() -> Any:
    """A callback timing training batches 2..n in process CPU time (the first warms up)."""
    import pytorch_lightning as pl

    class BatchTimer(pl.Callback):
        def __init__(self) -> None:
            self.steps, self.cpu, self._started = 0, 0.0, 0.0

        def on_train_batch_start(self, *args: Any) -> None:
            self._started = time.process_time()

        def on_train_batch_end(self, *args: Any) -> None:
            self.steps += 1
            if self.steps > 1:
                self.cpu += time.process_time() - self._started

    return BatchTimer()


def measure(tasks: list[str], sizes: list[int], steps: int) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix=f"data-scale-{task}-{size}x-") as scratch:
                root = Path(scratch)
                source, amount = write_source(task, size, root)
                for stage in STAGES:
                    result = run_child(stage, task, size, root, source, steps)
                    mib = round(source.stat().st_size / 2**20, 1)
                    rows.append({"task": task, "size": size, "amount": amount, "stage": stage,
                                 "source_mib": mib, **result})  # fmt: skip
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def verdicts(rows: list[dict[str, Any]], tasks: list[str], sizes: list[int]) -> list[dict]:
    out = []
    for task in tasks:
        for stage in STAGES:
            peak = {
                r["size"]: r["peak_rss_mib"]
                for r in rows
                if (r["task"], r["stage"]) == (task, stage)
            }
            ratio = peak[max(sizes)] / peak[min(sizes)]
            out.append(
                {"task": task, "stage": stage, "ratio": round(ratio, 3), "met": ratio <= RSS_TARGET}
            )
    return out


def report(rows: list[dict[str, Any]], checks: list[dict[str, Any]], sizes: list[int]) -> str:
    table = md_table(
        ["task", "size", "rows / chars", "source MiB", "stage", "peak RSS MiB", "CPU-s",
         "training throughput"],
        [[r["task"], f"{r['size']}x", f"{r['amount']:,}", r["source_mib"], r["stage"],
          r["peak_rss_mib"], r["cpu_seconds"],
          f"{r['throughput']:,} {r['unit']} ({r['steps']} steps)" if "throughput" in r else ""]
         for r in rows],
    )  # fmt: skip
    verdict_table = md_table(
        ["task", "stage", f"peak RSS {max(sizes)}x / {min(sizes)}x", f"target <= {RSS_TARGET}"],
        [[c["task"], c["stage"], c["ratio"], verdict(c["met"])] for c in checks],
    )
    return f"{table}\n\n{verdict_table}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        stage, task, root, source, steps = sys.argv[2:7]
        result = child(stage, task, Path(root), Path(source), int(steps))
        print(json.dumps({**result, "peak_rss_mib": peak_rss_mib()}))
        return
    parser = parser_with_common_options(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--steps", type=int, default=100, help="training batches per run")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.steps = [1, 2], 3
    info = start(args)
    rows = measure(args.tasks, args.sizes, args.steps)
    checks = verdicts(rows, args.tasks, args.sizes)
    print(machine_line(info))
    print(report(rows, checks, args.sizes))
    write_json(args.json, {"machine": info, "rows": rows, "verdicts": checks})


if __name__ == "__main__":
    main()
