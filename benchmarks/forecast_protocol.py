"""The long-horizon forecasting protocol: every model against naive and ridge NLinear.

Each dataset is prepared once per horizon through rnnlab's own path; every model trains
through the train stage (logger off, one torch thread) and is scored by the evaluate stage on
the same test windows, with the naive, seasonal-naive and closed-form ridge NLinear baselines.
Reported: MSE and MAE on the z scale (mean ± sd over seeds), the training CPU-seconds of the
process (user + system), their kernel share, and training windows per CPU-second. ETTh2 (not
part of the project, ``--etth2``; skipped when absent) follows the standard protocol; CO2 uses
rnnlab's 70/15/15 split. ``--speed``: each model in two fresh processes, with
``trainer.keep_freed_memory`` off and on (glibc's ``mallopt`` cannot be undone in a process).
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

import _common as bench

DATASETS: dict[str, list[str]] = {
    "etth2": [
        *("data=csv", "data.name=etth2", "data.target_columns=[OT]", "task.lookback=336"),
        *("data.split.train_end=8640", "data.split.val_end=11520", "data.split.test_end=14400"),
    ],
    "co2": ["data=co2", "task.lookback=104"],
}
# Model name -> overrides. Segment models read 24-step segments (14 at lookback 336).
SEGMENT = ["model.segment_len=24", "model.num_layers=1", "model.dropout=0.0"]
MODELS: dict[str, list[str]] = {
    **{name: [f"model={name}"] for name in ("linear", "dlinear", "mlp", "lstm", "gru", "rnn")},
    "transformer": ["model=transformer", "model.segment_len=24"],
    **{f"segment_{cell}": [f"model={cell}", *SEGMENT] for cell in ("gru", "lstm", "rnn")},
}
BASELINES = ("naive", "seasonal_naive", "ridge_nlinear")
RATE_AND_KERNEL = (("windows_per_cpu_s", ""), ("kernel_pct", " %"))


def train_and_evaluate(overrides: list[str], root: Path) -> dict[str, Any]:
    """Prepare (once per directory), train and evaluate one configuration; CPU-seconds and
    page faults of the training alone."""
    from rnnlab.config import compose, validate
    from rnnlab.data import prepare_task_data
    from rnnlab.paths import RunPaths
    from rnnlab.stages.evaluate import run_evaluate
    from rnnlab.stages.train import run_train

    common = ["logger=none", "trainer.num_threads=1", "trainer.grad_flow_batches=0"]
    cfg = validate(compose([*common, *overrides]))
    paths = RunPaths(root)
    if not (paths.prepared_dir / "meta.json").exists():
        prepare_task_data(cfg, paths)
    before = resource.getrusage(resource.RUSAGE_SELF)
    summary = run_train(cfg, paths)
    after = resource.getrusage(resource.RUSAGE_SELF)
    test = run_evaluate(cfg, paths)["test"]
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    share = min(1.0, cfg.trainer.limit_train_batches)
    windows = summary["train_windows"] * summary["epochs"] * share
    return {
        "train_cpu_s": round(user + system, 2),
        "kernel_pct": round(100 * system / (user + system), 1),
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "epochs": summary["epochs"],
        "windows_per_cpu_s": round(windows / (user + system), 1),
        "scores": {
            name: {k: test[name][k] for k in ("mse_z", "mae_z")} for name in ("model", *BASELINES)
        },
    }


def overrides(args: Any, dataset: str, horizon: int, model: str, seed: int) -> list[str]:
    path = [f"data.path={args.etth2.resolve()}"] if dataset == "etth2" else []
    data = [*DATASETS[dataset], *path, f"task.horizon={horizon}"]
    return [*data, *MODELS[model], f"seed={seed}", *args.set]


def run_grid(args: Any, datasets: list[str]) -> list[dict[str, Any]]:
    results = []
    grid = itertools.product(datasets, args.horizons, args.models, args.seeds)
    with tempfile.TemporaryDirectory(prefix="forecast-protocol-") as scratch:
        for dataset, horizon, model, seed in grid:
            root = Path(scratch) / f"{dataset}-{horizon}"  # prepared once per horizon
            result = train_and_evaluate(overrides(args, dataset, horizon, model, seed), root)
            result.update(dataset=dataset, horizon=horizon, model=model, seed=seed)
            results.append(result)
            print(json.dumps(result), flush=True)
    return results


def protocol_table(results: list[dict[str, Any]]) -> str:
    """One row per (dataset, horizon, model), mean over seeds; baselines once per horizon."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["horizon"], r["model"]), []).append(r)
    rows, seen = [], set()
    for (dataset, horizon, model), runs in groups.items():
        if (dataset, horizon) not in seen:
            seen.add((dataset, horizon))
            for name in BASELINES:
                s = runs[0]["scores"][name]
                rows.append(
                    [dataset, horizon, name, f"{s['mse_z']:.4f}", f"{s['mae_z']:.4f}", *"----"]
                )
        mse, mae = ([r["scores"]["model"][k] for r in runs] for k in ("mse_z", "mae_z"))
        keys = ("train_cpu_s", "kernel_pct", "windows_per_cpu_s")
        cpu, kernel, rate = (statistics.mean(r[k] for r in runs) for k in keys)
        figures = [mean_sd(mse), mean_sd(mae), f"{cpu:.1f}", f"{kernel:.0f} %", f"{rate:.0f}"]
        rows.append([dataset, horizon, model, *figures, len(runs)])
    header = ["data", "H", "model", "test MSE (z)", "test MAE (z)", "train CPU-s", "kernel"]
    return bench.md_table([*header, "windows / CPU-s", "seeds"], rows)


def mean_sd(values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread}"


def speed(args: Any, datasets: list[str]) -> tuple[str, list]:
    """Each model in two fresh processes, trainer.keep_freed_memory=false then true."""
    rows = []
    for model in args.models:
        base = overrides(args, datasets[0], args.horizons[0], model, 0)
        runs = [[*base, f"trainer.keep_freed_memory={keep}"] for keep in ("false", "true")]
        off, on = (
            bench.fresh_process(__file__, run, bench.child_env(OMP_NUM_THREADS="1")) for run in runs
        )
        cells = [f"{r[k]:.0f}{unit}" for r in (off, on) for k, unit in RATE_AND_KERNEL]
        gain = on["windows_per_cpu_s"] / off["windows_per_cpu_s"]
        faults = f"{off['minor_faults'] / 1e6:.2f} M -> {on['minor_faults'] / 1e6:.2f} M"
        rows.append([model, *cells, f"{gain:.2f}x", faults])
        print(rows[-1], flush=True)
    header = ["model", "windows / CPU-s (off)", "kernel (off)", "windows / CPU-s (on)"]
    return bench.md_table([*header, "kernel (on)", "speed-up", "minor page faults"], rows), rows


def main() -> None:
    parser = bench.options(__doc__)
    default_etth2 = bench.REPO.parent / "shared" / "data" / "ETTh2.csv"
    parser.add_argument("--etth2", type=Path, default=default_etth2, help="path of ETTh2.csv")
    parser.add_argument("--datasets", nargs="+", default=["etth2", "co2"], choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--horizons", nargs="+", type=int, default=[24, 96, 192, 336])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every model")
    parser.add_argument("--speed", action="store_true", help="trainer.keep_freed_memory off/on")
    args = parser.parse_args()
    if args.worker:
        bench.quiet_lightning()
        with tempfile.TemporaryDirectory() as root:
            return bench.write_json(args.json, train_and_evaluate(args.worker, Path(root)))
    info = bench.start(args)
    if args.quick:  # co2 at its default horizon, two models, 1 epoch
        args.datasets, args.models = ["co2"], ["linear", "segment_gru"]
        args.horizons, args.seeds = [13], [0]
        args.set = [*args.set, "trainer.max_epochs=1"]
    datasets = [d for d in args.datasets if d != "etth2" or args.etth2.exists()]
    if "etth2" in args.datasets and "etth2" not in datasets:
        print(f"skipping etth2: {args.etth2} not found (pass --etth2 PATH)")
    if args.speed:
        text, rows = speed(args, datasets)
        return bench.finish(info, text, args.json, {"speed": rows})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    bench.quiet_lightning()
    results = run_grid(args, datasets)
    bench.finish(info, protocol_table(results), args.json, {"results": results})


if __name__ == "__main__":
    main()
