"""Parallel sweep: 8 jobs with 2 joblib workers against the same 8 jobs one at a time.

Each mode runs ``python -m rnnlab.app -m`` in a fresh temporary directory with
``MLFLOW_TRACKING_URI`` pointing at a brand-new sqlite file (the case that races without the
parent-side setup). Reported: wall time of the whole sweep, and how many finished training runs
landed in MLflow, in the right experiment, as children of the sweep's parent run.
Target: 8 of 8 runs in both modes, parallel faster than sequential.

    python benchmarks/parallel_sweep.py [--epochs 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    hydra_multirun,
    machine_info,
    machine_line,
    md_table,
    sigterm_exits,
    write_json,
)

# 8 jobs on the default CO2 task: enough computation per job that it, not start-up and
# tracking writes, dominates the wall time.
SWEEP = ["model=rnn,lstm,gru,mlp", "model.hidden_size=16,32"]


def run_sweep(parallel: bool, epochs: int) -> dict[str, Any]:
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="parallel-sweep-") as scratch:
        root = Path(scratch)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        overrides = [
            *(["experiment=parallel"] if parallel else []),
            f"trainer.max_epochs={epochs}",
            "trainer.early_stopping_patience=100",
            *SWEEP,
        ]
        # Run from the empty scratch directory: a fresh repository, as the target says.
        seconds = hydra_multirun(overrides, root, cwd=root)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("rnnlab-forecast")
        runs = client.search_runs([experiment.experiment_id])
        parents = {r.info.run_id for r in runs if r.data.tags.get("rnnlab.kind") == "sweep"}
        trainings = [r for r in runs if "task" in r.data.tags]
        landed = [
            r
            for r in trainings
            if r.info.status == "FINISHED"
            and "test/model/mase" in r.data.metrics
            and r.data.tags.get("mlflow.parentRunId") in parents
        ]
        default = client.get_experiment_by_name("Default")
        stray = len(client.search_runs([default.experiment_id])) if default else 0
    return {"seconds": round(seconds, 1), "runs": len(landed), "stray_runs": stray}


def main() -> None:
    sigterm_exits()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--json")
    args = parser.parse_args()
    info = machine_info()
    results = {
        "sequential": run_sweep(parallel=False, epochs=args.epochs),
        "parallel (2 workers)": run_sweep(parallel=True, epochs=args.epochs),
    }
    rows = [
        [mode, r["seconds"], f"{r['runs']} of 8", r["stray_runs"]] for mode, r in results.items()
    ]
    print(machine_line(info))
    print(md_table(["mode", "wall s", "runs in MLflow", "runs misfiled"], rows))
    speedup = results["sequential"]["seconds"] / results["parallel (2 workers)"]["seconds"]
    print(f"speed-up: {speedup:.2f}x")
    write_json(args.json, {"machine": info, "results": results, "speedup": speedup})


if __name__ == "__main__":
    main()
