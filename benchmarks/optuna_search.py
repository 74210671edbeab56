"""Optuna search against the grid: trials needed to reach the grid's best validation loss.

``hparams_search=forecast_grid`` (32 jobs) against ``hparams_search=optuna_forecast`` (TPE,
median pruning, 10 trials: a third of the grid, continuous learning rate and dropout), both on
the embedded CO2 data for ``--epochs`` epochs, two jobs side by side, each in a fresh scratch
folder (its own mlflow.db and optuna.db). Target: the search's best validation loss is at most
the grid's within 32 / 3 trials. ``--quick``: a 2-job grid and 2 trials, a tenth of an epoch.
"""

from __future__ import annotations

import itertools
import resource
import tempfile
from pathlib import Path
from typing import Any

from _common import finish, finished_runs, hydra_multirun, md_table, options, start, verdict

METRIC = "train/best_val_loss"
TRIALS = 32 // 3
SHORT = ["trainer.limit_train_batches=0.1"]
# --quick: the grid narrowed to its two learning rates
QUICK_GRID = ["trainer.batch_size=64", "model.hidden_size=32", "model.num_layers=1"]
QUICK_GRID += ["model.dropout=0.0", *SHORT]


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
        overrides = ["hparams_search=optuna_forecast", *common, f"hydra.sweeper.n_trials={trials}"]
        overrides += [f"hydra.sweeper.storage={storage}", *(SHORT if quick else [])]
        seconds = hydra_multirun(overrides, root, cwd=root)
        study = optuna.load_study(study_name="rnnlab-forecast", storage=storage)
        ordered = sorted(study.trials, key=lambda t: t.number)
        # A pruned trial's value is its last reported loss; its finished run's best is logged.
        losses = [t.value if t.value is not None else float("inf") for t in ordered]
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in ordered)
    return {
        "seconds": round(seconds, 1),
        "trials": len(ordered),
        "pruned": pruned,
        "best": study.best_trial.value,
        "best_params": study.best_trial.params,
        "curve": list(itertools.accumulate(losses, min)),
    }


def main() -> None:
    parser = options(__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    info = start(args)
    epochs, trials = (1, 2) if args.quick else (args.epochs, TRIALS)
    common = ["experiment=parallel", f"trainer.max_epochs={epochs}", "trainer.num_threads=1"]
    started = resource.getrusage(resource.RUSAGE_CHILDREN)
    grid, search = run_grid(common, args.quick), run_search(common, trials, args.quick)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime - started.ru_utime - started.ru_stime
    reached = next((i + 1 for i, b in enumerate(search["curve"]) if b <= grid["best"]), None)
    ok = reached is not None and reached <= max(1, grid["trials"] // 3)
    rows = [
        ["grid (forecast_grid)", grid["trials"], 0, f"{grid['best']:.5f}", grid["seconds"]],
        [
            "Optuna TPE (optuna_forecast)",
            search["trials"],
            search["pruned"],
            f"{search['best']:.5f}",
            search["seconds"],
        ],
    ]
    text = f"CPU-seconds of all jobs: {cpu:.0f}.\n\n"
    text += md_table(["search", "trials", "pruned", f"best {METRIC}", "wall s"], rows)
    text += f"\nOptuna's best so far by trial: {', '.join(f'{b:.5f}' for b in search['curve'])}"
    text += f"\nReached the grid's best at trial {reached} (target: <= {grid['trials'] // 3}): "
    text += f"{verdict(ok)}. Best trial's settings: {search['best_params']}"
    finish(info, text, args.json, {"cpu_seconds": cpu, "grid": grid, "search": search})


if __name__ == "__main__":
    main()
