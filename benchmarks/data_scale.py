"""Data larger than memory: peak memory and throughput of `prepare` and training at 1x, 10x
and 100x the embedded data.

Forecast: the CO2 series (gaps interpolated) tiled with N(0, 0.1 ppm) noise as an hourly CSV
(pandas' timestamps end in 2262, so weekly dates could not reach 100x), the default model.
LM: pydoc_topics repeated as a text file, a 1x64 LSTM. ``run_prepare``, then ``run_train`` (one
epoch cut to ``--steps`` batches, the whole validation pass, the model saved), each in a fresh
process, one torch thread, no MLflow. Peak RSS is the child's own ``VmHWM``: its ``ru_maxrss``
would carry this (larger) process's peak over ``exec``. Target: peak RSS at 100x <= 1.2x at 1x.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as bench

RSS_TARGET = 1.2  # peak RSS at the largest size / at 1x
TASKS = ("forecast", "lm")
STAGES = ("prepare", "train")


def overrides(task: str, source: str) -> list[str]:
    common = ["logger=none", "trainer.max_epochs=1", "trainer.num_threads=1"]
    common += ["trainer.grad_flow_batches=0", "trainer.resume=false", f"data.path={source}"]
    if task == "forecast":
        return [*common, "data=csv", "data.target_columns=[co2]", "data.seasonal_period=52"]
    return [*common, "task=lm", "data=text_file", "model.hidden_size=64"]


def write_source(task: str, size: int, folder: Path) -> tuple[Path, int]:
    """The ``size``-times data file for ``task``; returns it and its rows (or characters)."""
    import numpy as np
    import pandas as pd

    if task == "forecast":
        from statsmodels.datasets import co2

        series = co2.load_pandas().data["co2"].interpolate().to_numpy()
        noise = np.random.default_rng(size).normal(0, 0.1, size * len(series))
        values = np.tile(series, size) + noise
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


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One stage in this (fresh) process; its peak RSS (``VmHWM``) at the end, in MiB."""
    from rnnlab import config
    from rnnlab.paths import RunPaths

    task, keys, paths = (
        spec["task"],
        overrides(spec["task"], spec["source"]),
        RunPaths(Path(spec["root"])),
    )
    cfg = config.validate(config.compose(keys))
    if spec["stage"] == "prepare":
        from rnnlab.stages.prepare import run_prepare

        result: dict[str, Any] = {"summary": run_prepare(cfg, paths)}
    else:
        from rnnlab.stages.train import run_train
        from rnnlab.tasks import get_task

        bench.quiet_lightning()
        train = get_task(task).load_data(cfg, paths).train  # mapped: opening it reads nothing
        batches = math.ceil(len(train) / cfg.trainer.batch_size)
        fraction = min(1.0, (spec["steps"] + 0.5) / batches)
        cfg = config.validate(config.compose([*keys, f"trainer.limit_train_batches={fraction}"]))
        timer = batch_timer()
        run_train(cfg, paths, callbacks=[timer])
        per_batch = cfg.trainer.batch_size * (cfg.task.bptt if task == "lm" else 1)
        result = {
            "steps": timer.steps,
            "timed_cpu_seconds": round(timer.cpu, 3),
            "throughput": round((timer.steps - 1) * per_batch / timer.cpu, 1),
            "unit": "chars/CPU-s" if task == "lm" else "windows/CPU-s",
        }
    status = Path("/proc/self/status").read_text().splitlines()
    kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return {**result, "peak_rss_mib": round(kib / 1024, 1)}


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
    env = bench.child_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for task in tasks:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix=f"data-scale-{task}-{size}x-") as scratch:
                source, amount = write_source(task, size, Path(scratch))
                for stage in STAGES:
                    spec = {"stage": stage, "task": task, "source": str(source), "steps": steps}
                    spec["root"] = scratch
                    result = bench.fresh_process(__file__, spec, env=env, cwd=Path(scratch))
                    mib = round(source.stat().st_size / 2**20, 1)
                    rows.append({"task": task, "size": size, "amount": amount, "stage": stage,
                                 "source_mib": mib, **result})  # fmt: skip
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def report(rows: list[dict[str, Any]], tasks: list[str], sizes: list[int]) -> tuple[str, list]:
    checks = []
    for task in tasks:
        for stage in STAGES:
            same = [r for r in rows if (r["task"], r["stage"]) == (task, stage)]
            peak = {r["size"]: r["peak_rss_mib"] for r in same}
            ratio = peak[max(sizes)] / peak[min(sizes)]
            checks.append([task, stage, round(ratio, 3), bench.verdict(ratio <= RSS_TARGET)])
    table = bench.md_table(
        ["task", "size", "rows / chars", "source MiB", "stage", "peak RSS MiB", "CPU-s",
         "training throughput"],
        [[r["task"], f"{r['size']}x", f"{r['amount']:,}", r["source_mib"], r["stage"],
          r["peak_rss_mib"], r["cpu_s"],
          f"{r['throughput']:,} {r['unit']} ({r['steps']} steps)" if "throughput" in r else ""]
         for r in rows],
    )  # fmt: skip
    header = ["task", "stage", f"peak RSS {max(sizes)}x / {min(sizes)}x", f"target <= {RSS_TARGET}"]
    return f"{table}\n\n{bench.md_table(header, checks)}", checks


def main() -> None:
    parser = bench.options(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--steps", type=int, default=100, help="training batches per run")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    args = parser.parse_args()
    if args.worker:
        return bench.write_json(args.json, worker(args.worker))
    if args.quick:
        args.sizes, args.steps = [1, 2], 3
    info = bench.start(args)
    rows = measure(args.tasks, args.sizes, args.steps)
    text, checks = report(rows, args.tasks, args.sizes)
    bench.finish(info, text, args.json, {"rows": rows, "verdicts": checks})


if __name__ == "__main__":
    main()
