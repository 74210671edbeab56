"""The long-horizon forecasting protocol: every model against naive and ridge NLinear.

Each dataset is prepared once per horizon through rnnlab's own CSV/dataset path; every model
then trains through the train stage (``run_train``, logger off) and is scored by the evaluate
stage on the same test windows, which also gives the naive, seasonal-naive and closed-form
ridge NLinear baselines. Reported: MSE and MAE on the scaled (z) scale, mean over seeds, the
training CPU-seconds of the process (user + system, ``resource.getrusage``), the share of them
spent in the kernel, and training windows per CPU-second.

ETTh2 follows the standard protocol (rows 0-14399; train 8640, val 2880, test 2880 rows;
lookback 336, target OT); the embedded CO2 series uses rnnlab's default 70/15/15 split and
lookback 104. ETTh2 is not part of the project: pass its path with ``--etth2``; it is skipped
when absent.

    python benchmarks/forecast_protocol.py --etth2 ../shared/data/ETTh2.csv \\
        --datasets etth2 co2 --horizons 24 96 --seeds 0 1 2 --models linear segment_gru
    python benchmarks/forecast_protocol.py --quick          # seconds: co2, two models, 1 epoch
    python benchmarks/forecast_protocol.py --speed --etth2 ...   # kernel time with and without
                                                                # trainer.keep_freed_memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO,
    add_nice_option,
    apply_nice,
    child_env,
    machine_info,
    machine_line,
    md_table,
    python,
    quiet_lightning,
    sigterm_exits,
    write_json,
)

DEFAULT_ETTH2 = REPO.parent / "shared" / "data" / "ETTh2.csv"

DATASETS: dict[str, list[str]] = {
    "etth2": [
        "data=csv",
        "data.name=etth2",
        "data.target_columns=[OT]",
        "data.split.train_end=8640",
        "data.split.val_end=11520",
        "data.split.test_end=14400",
        "task.lookback=336",
    ],
    "co2": ["data=co2", "task.lookback=104"],
}

# Model name -> overrides. Segment models read 24-step segments (14 at lookback 336).
SEGMENT = ["model.segment_len=24", "model.num_layers=1", "model.dropout=0.0"]
MODELS: dict[str, list[str]] = {
    "linear": ["model=linear"],
    "dlinear": ["model=dlinear"],
    "mlp": ["model=mlp"],
    "lstm": ["model=lstm"],
    "gru": ["model=gru"],
    "rnn": ["model=rnn"],
    "transformer": ["model=transformer", "model.segment_len=24"],
    "segment_gru": ["model=gru", *SEGMENT],
    "segment_lstm": ["model=lstm", *SEGMENT],
    "segment_rnn": ["model=rnn", *SEGMENT],
}
BASELINES = ("naive", "seasonal_naive", "ridge_nlinear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--etth2", type=Path, default=DEFAULT_ETTH2, help="path of ETTh2.csv")
    parser.add_argument("--datasets", nargs="+", default=["etth2", "co2"], choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--horizons", nargs="+", type=int, default=[24, 96, 192, 336])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every model")
    parser.add_argument("--quick", action="store_true", help="co2, linear + segment_gru, 1 epoch")
    parser.add_argument(
        "--speed",
        action="store_true",
        help="train each model briefly with trainer.keep_freed_memory off and on (a process "
        "each: mallopt cannot be undone) and compare windows per CPU-second and kernel time",
    )
    parser.add_argument("--json", help="write the raw results here")
    add_nice_option(parser)
    args = parser.parse_args()
    sigterm_exits()
    niceness = apply_nice(args.nice)
    if args.quick:
        args.datasets, args.models = ["co2"], ["linear", "segment_gru"]
        args.horizons, args.seeds = [13], [0]
        args.set = [*args.set, "trainer.max_epochs=1"]
    datasets = [d for d in args.datasets if d != "etth2" or args.etth2.exists()]
    if "etth2" in args.datasets and "etth2" not in datasets:
        print(f"skipping etth2: {args.etth2} not found (pass --etth2 PATH)")
    if args.speed:
        speed(args, datasets)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    quiet_lightning()
    info = {**machine_info(), "niceness": niceness}
    results = run_grid(args, datasets)
    write_json(args.json, {"machine": info, "results": results})
    print(machine_line(info))
    print(protocol_table(results))


def run_grid(args: argparse.Namespace, datasets: list[str]) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="forecast-protocol-") as scratch:
        for dataset in datasets:
            for horizon in args.horizons:
                for model in args.models:
                    for seed in args.seeds:
                        overrides = [
                            *DATASETS[dataset],
                            f"data.path={args.etth2.resolve()}" if dataset == "etth2" else "",
                            f"task.horizon={horizon}",
                            *MODELS[model],
                            f"seed={seed}",
                            *args.set,
                        ]
                        root = Path(scratch) / f"{dataset}-{horizon}"
                        result = train_and_evaluate([o for o in overrides if o], root)
                        result.update(dataset=dataset, horizon=horizon, model=model, seed=seed)
                        results.append(result)
                        print(json.dumps(result), flush=True)
    return results


def train_and_evaluate(overrides: list[str], root: Path) -> dict[str, Any]:
    """Prepare (once per directory), train and evaluate one configuration; CPU-seconds and
    page faults of the training alone."""
    from rnnlab.config import compose, validate
    from rnnlab.data import prepare_task_data
    from rnnlab.paths import RunPaths
    from rnnlab.stages.evaluate import run_evaluate
    from rnnlab.stages.train import run_train

    cfg = validate(
        compose(["logger=none", "trainer.num_threads=1", "trainer.grad_flow_batches=0", *overrides])
    )
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
            name: {"mse_z": test[name]["mse_z"], "mae_z": test[name]["mae_z"]}
            for name in ("model", *BASELINES)
        },
    }


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
                    [
                        dataset,
                        horizon,
                        name,
                        f"{s['mse_z']:.4f}",
                        f"{s['mae_z']:.4f}",
                        "-",
                        "-",
                        "-",
                        "-",
                    ]
                )
        mse = mean_sd([r["scores"]["model"]["mse_z"] for r in runs])
        mae = mean_sd([r["scores"]["model"]["mae_z"] for r in runs])
        cpu = [r["train_cpu_s"] for r in runs]
        rows.append(
            [
                dataset,
                horizon,
                model,
                mse,
                mae,
                f"{statistics.mean(cpu):.1f}",
                f"{statistics.mean(r['kernel_pct'] for r in runs):.0f} %",
                f"{statistics.mean(r['windows_per_cpu_s'] for r in runs):.0f}",
                len(runs),
            ]
        )
    header = [
        "data",
        "H",
        "model",
        "test MSE (z)",
        "test MAE (z)",
        "train CPU-s",
        "kernel",
        "windows / CPU-s",
        "seeds",
    ]
    return md_table(header, rows)


def mean_sd(values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread}"


def speed(args: argparse.Namespace, datasets: list[str]) -> None:
    """Each model in two child processes, trainer.keep_freed_memory=false then true."""
    rows = []
    for model in args.models:
        measured = {}
        for keep in ("false", "true"):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                command = [
                    python(),
                    __file__,
                    "--datasets",
                    datasets[0],
                    "--etth2",
                    str(args.etth2),
                    "--models",
                    model,
                    "--horizons",
                    str(args.horizons[0]),
                    "--seeds",
                    "0",
                    "--json",
                    out.name,
                    "--set",
                    *args.set,
                    f"trainer.keep_freed_memory={keep}",
                ]
                env = {**child_env(), "OMP_NUM_THREADS": "1"}
                subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
                measured[keep] = json.loads(Path(out.name).read_text())["results"][0]
        off, on = measured["false"], measured["true"]
        rows.append(
            [
                model,
                f"{off['windows_per_cpu_s']:.0f}",
                f"{off['kernel_pct']:.0f} %",
                f"{on['windows_per_cpu_s']:.0f}",
                f"{on['kernel_pct']:.0f} %",
                f"{on['windows_per_cpu_s'] / off['windows_per_cpu_s']:.2f}x",
                f"{off['minor_faults'] / 1e6:.2f} M -> {on['minor_faults'] / 1e6:.2f} M",
            ]
        )
        print(rows[-1], flush=True)
    print(
        md_table(
            [
                "model",
                "windows / CPU-s (off)",
                "kernel (off)",
                "windows / CPU-s (on)",
                "kernel (on)",
                "speed-up",
                "minor page faults",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
