"""Optuna search against the grid: trials needed to reach the grid's best validation loss.

The grid is ``hparams_search=forecast_grid`` (32 jobs); the search is
``hparams_search=optuna_forecast`` (TPE, median pruning, 10 trials: a third of the grid) over
the same axes with continuous learning rate and dropout. Both train on the embedded CO2 data
with the same short budget (``--epochs``), two jobs side by side, each in a fresh scratch
folder (its own mlflow.db and optuna.db). Target: the search's best validation loss is at most
the grid's within 32 / 3 trials.

    python benchmarks/optuna_search.py [--epochs 5] [--trials 10] [--json out.json]
    python benchmarks/optuna_search.py --quick     # a 2-job grid and 2 trials, 1 short epoch
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    finished_runs,
    hydra_multirun,
    machine_info,
    machine_line,
    md_table,
    sigterm_exits,
    verdict,
    write_json,
)

METRIC = "train/best_val_loss"
GRID_JOBS = 32
# --quick: the grid narrowed to its two learning rates, a tenth of an epoch each
QUICK_GRID = ["trainer.batch_size=64", "model.hidden_size=32", "model.num_layers=1"]
QUICK_GRID += ["model.dropout=0.0", "trainer.limit_train_batches=0.1"]


def best_so_far(losses: list[float]) -> list[float]:
    out, best = [], float("inf")
    for loss in losses:
        best = min(best, loss)
        out.append(best)
    return out


def run_grid(common: list[str], quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="grid-") as scratch:
        root = Path(scratch)
        overrides = ["hparams_search=forecast_grid", *common, *(QUICK_GRID if quick else [])]
        seconds = hydra_multirun(overrides, root, cwd=root)
        losses = list(finished_runs(root, "rnnlab-forecast", METRIC)[METRIC])
    return {"seconds": round(seconds, 1), "trials": len(losses), "best": min(losses)}


def run_search(common: list[str], trials: int, quick: bool) -> dict[str, Any]:
    import optuna

    with tempfile.TemporaryDirectory(prefix="optuna-") as scratch:
        root = Path(scratch)
        storage = f"sqlite:///{root / 'optuna.db'}"
        overrides = [
            "hparams_search=optuna_forecast",
            *common,
            f"hydra.sweeper.n_trials={trials}",
            f"hydra.sweeper.storage={storage}",
            *(["trainer.limit_train_batches=0.1"] if quick else []),
        ]
        seconds = hydra_multirun(overrides, root, cwd=root)
        study = optuna.load_study(study_name="rnnlab-forecast", storage=storage)
        ordered = sorted(study.trials, key=lambda t: t.number)
        # A pruned trial's value is its last reported loss; its finished run's best is logged.
        losses = [t.value if t.value is not None else float("inf") for t in ordered]
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in ordered)
        best = study.best_trial
    return {
        "seconds": round(seconds, 1),
        "trials": len(ordered),
        "pruned": pruned,
        "best": best.value,
        "best_params": best.params,
        "curve": best_so_far(losses),
    }


def main() -> None:
    sigterm_exits()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--trials", type=int, default=GRID_JOBS // 3)
    parser.add_argument("--quick", action="store_true", help="a smoke run, not for the docs")
    parser.add_argument("--json")
    args = parser.parse_args()
    epochs, trials = (1, 2) if args.quick else (args.epochs, args.trials)
    common = ["experiment=parallel", f"trainer.max_epochs={epochs}", "trainer.num_threads=1"]
    info = machine_info()
    started = resource.getrusage(resource.RUSAGE_CHILDREN)
    grid = run_grid(common, args.quick)
    search = run_search(common, trials, args.quick)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime - started.ru_utime - started.ru_stime
    reached = next((i + 1 for i, b in enumerate(search["curve"]) if b <= grid["best"]), None)
    ok = reached is not None and reached <= max(1, grid["trials"] // 3)
    print(f"\n{machine_line(info)} CPU-seconds of all jobs: {cpu:.0f}.")
    print(
        md_table(
            ["search", "trials", "pruned", f"best {METRIC}", "wall s"],
            [
                ["grid (forecast_grid)", grid["trials"], 0, f"{grid['best']:.5f}", grid["seconds"]],
                [
                    "Optuna TPE (optuna_forecast)",
                    search["trials"],
                    search["pruned"],
                    f"{search['best']:.5f}",
                    search["seconds"],
                ],
            ],
        )
    )
    print(
        f"Optuna's best so far by trial: {', '.join(f'{b:.5f}' for b in search['curve'])}\n"
        f"Reached the grid's best at trial {reached} (target: <= {grid['trials'] // 3}): "
        f"{verdict(ok)}. Best trial's settings: {search['best_params']}"
    )
    write_json(args.json, {"machine": info, "cpu_seconds": cpu, "grid": grid, "search": search})


if __name__ == "__main__":
    main()
