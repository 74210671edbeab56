"""Every model variant on a classification dataset: test accuracy and CPU training time.

One Hydra multirun through the real front door,

    python -m rnnlab.app -m task=classify data=<data> model=<all variants> seed=<seeds>

with ``MLFLOW_TRACKING_URI`` pointing at a temporary sqlite file; the table is then read back
from MLflow (``test/model/accuracy``, ``test/model/macro_f1``, ``train/train_seconds``, ...), so
it shows exactly what a user would see in ``mlflow ui``. Baselines (majority class, logistic
regression on summary features) are on the same test split.

    python benchmarks/classify_sweep.py [--data japanese_vowels] [--seeds 0,1,2] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    finished_runs,
    hydra_multirun,
    machine_info,
    machine_line,
    md_table,
    median,
    sigterm_exits,
    spread,
    write_json,
)

VARIANTS = ("rnn", "rnn_relu", "lstm", "gru", "bilstm", "bigru", "lstm_attn", "mlp", "transformer")


def collect(scratch: Path) -> dict[str, list[dict[str, float]]]:
    by_model: dict[str, list[dict[str, float]]] = defaultdict(list)
    for run in finished_runs(scratch, "rnnlab-classify", "test/model/accuracy"):
        by_model[run.data.params["model.name"]].append(run.data.metrics)
    return by_model


def table(by_model: dict[str, list[dict[str, float]]]) -> str:
    rows = []
    for model in [*VARIANTS, *sorted(set(by_model) - set(VARIANTS))]:
        runs = by_model.get(model)
        if not runs:
            continue
        acc = [r["test/model/accuracy"] for r in runs]
        rows.append(
            [
                model,
                f"{median(acc):.3f}",
                spread(acc),
                f"{median([r['test/model/macro_f1'] for r in runs]):.3f}",
                f"{median([r['train/train_seconds'] for r in runs]):.1f}",
                f"{median([r['train/epochs'] for r in runs]):.0f}",
                f"{runs[0]['train/n_parameters']:.0f}",
            ]
        )
    first = next(iter(by_model.values()))[0]
    for baseline in ("logistic", "majority"):
        acc = first[f"test/{baseline}/accuracy"]
        f1 = first[f"test/{baseline}/macro_f1"]
        rows.append([f"*{baseline} baseline*", f"{acc:.3f}", "", f"{f1:.3f}", "", "", ""])
    header = [
        "variant",
        "test accuracy (median)",
        "min–max over seeds",
        "macro-F1",
        "train s (CPU)",
        "epochs",
        "parameters",
    ]
    return md_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="japanese_vowels")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (Hydra sweep)")
    parser.add_argument("--models", default=",".join(VARIANTS))
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.max_epochs=60"
    )
    args = parser.parse_args()
    sigterm_exits()
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="classify-sweep-") as scratch:
        sweep = ["task=classify", f"data={args.data}", f"model={args.models}"]
        sweep += [f"seed={args.seeds}", *args.overrides]
        seconds = hydra_multirun(sweep, Path(scratch))
        by_model = collect(Path(scratch))
    print()
    print(machine_line(info))
    print(f"Sweep wall time {seconds:.0f} s, one process, OMP_NUM_THREADS=1.")
    print()
    print(table(by_model))
    write_json(args.json, {"machine": info, "seconds": seconds, "runs": by_model})


if __name__ == "__main__":
    main()
