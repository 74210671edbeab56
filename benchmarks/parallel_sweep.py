"""Parallel sweep: 8 jobs with 2 joblib workers against the same 8 jobs one at a time.

Each mode runs ``python -m rnnlab.app -m`` in a fresh temporary directory with a brand-new
sqlite MLflow store (the case that races without the parent-side setup). Reported: wall time,
finished training runs in MLflow (``rnnlab.report``: children of the sweep's parent run, in the
right experiment) and runs misfiled under ``Default``. Target: 8 of 8 runs in both modes,
parallel faster. ``--quick``: the parallel mode alone, 2 jobs of one epoch; a lost or misfiled
run still fails it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import finish, finished_runs, hydra_multirun, md_table, options, start, tracking_uri

# 8 jobs on the default CO2 task: enough computation per job that it, not start-up and
# tracking writes, dominates the wall time.
SWEEP = ["model=rnn,lstm,gru,mlp", "model.hidden_size=16,32"]
QUICK = ["model=rnn,mlp", "experiment=quick"]


def run_sweep(parallel: bool, epochs: int, quick: bool) -> dict[str, Any]:
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="parallel-sweep-") as scratch:
        root = Path(scratch)
        overrides = [*(["experiment=parallel"] if parallel else []), *(QUICK if quick else SWEEP)]
        overrides += [f"trainer.max_epochs={epochs}", "trainer.early_stopping_patience=100"]
        # Run from the empty scratch directory: a fresh repository, as the target says.
        seconds = hydra_multirun(overrides, root, cwd=root)
        landed = finished_runs(root, "rnnlab-forecast", "test/model/mase")
        client = MlflowClient(tracking_uri(root))
        default = client.get_experiment_by_name("Default")
        stray = len(client.search_runs([default.experiment_id])) if default else 0
    return {"seconds": round(seconds, 1), "runs": len(landed), "stray_runs": stray}


def main() -> int:
    parser = options(__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    info = start(args)
    epochs, jobs = (1, 2) if args.quick else (args.epochs, 8)
    modes = {"sequential": False, "parallel (2 workers)": True}
    if args.quick:
        del modes["sequential"]
    results = {mode: run_sweep(parallel, epochs, args.quick) for mode, parallel in modes.items()}
    rows = [
        [m, r["seconds"], f"{r['runs']} of {jobs}", r["stray_runs"]] for m, r in results.items()
    ]
    seconds = [r["seconds"] for r in results.values()]
    speedup = seconds[0] / seconds[-1]
    text = md_table(["mode", "wall s", "runs in MLflow", "runs misfiled"], rows)
    payload = {"results": results, "speedup": speedup, "jobs": jobs}
    finish(info, f"{text}\nspeed-up: {speedup:.2f}x", args.json, payload)
    # A lost or misfiled run is a bug, in a quick run too (the speed-up is only a figure there).
    return 0 if all(r["runs"] == jobs and not r["stray_runs"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
