"""Every model variant on a classification dataset: test accuracy and CPU training time.

One Hydra multirun through the real front door,

    python -m rnnlab.app -m task=classify data=<data> model=<all variants> seed=<seeds>

with ``MLFLOW_TRACKING_URI`` pointing at a temporary sqlite file; the table is read back from
MLflow with ``rnnlab.report``, so it shows what a user sees in ``mlflow ui``. Baselines
(majority class, logistic regression on summary features) are on the same test split.

    python benchmarks/classify_sweep.py [--data japanese_vowels] [--seeds 0,1,2] [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    finished_runs,
    hydra_multirun,
    machine_line,
    md_table,
    parser_with_common_options,
    start,
    write_json,
)

VARIANTS = "rnn,rnn_relu,lstm,gru,bilstm,bigru,lstm_attn,mlp,transformer"
QUICK = ["experiment=quick", "trainer.max_epochs=1"]


def table(runs) -> str:
    by_model = runs.groupby("param:model.name", sort=False)
    rows = [
        [
            model,
            f"{group['test/model/accuracy'].median():.3f}",
            f"{group['test/model/accuracy'].min():.3f}–{group['test/model/accuracy'].max():.3f}",
            f"{group['test/model/macro_f1'].median():.3f}",
            f"{group['train/train_seconds'].median():.1f}",
            f"{group['train/epochs'].median():.0f}",
            group["param:n_parameters"].iloc[0],
        ]
        for model, group in by_model
    ]
    for baseline in ("logistic", "majority"):
        acc, f1 = runs[f"test/{baseline}/accuracy"][0], runs[f"test/{baseline}/macro_f1"][0]
        rows.append([f"*{baseline} baseline*", f"{acc:.3f}", "", f"{f1:.3f}", "", "", ""])
    header = ["variant", "test accuracy (median)", "min–max over seeds", "macro-F1"]
    return md_table([*header, "train s (CPU)", "epochs", "parameters"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = parser_with_common_options(__doc__)
    parser.add_argument("--data", default="japanese_vowels")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (Hydra sweep)")
    parser.add_argument("--models", default=VARIANTS)
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = parser.parse_args(argv)
    info = start(args)
    if args.quick:  # the small example file ships with the repository: no sktime loading
        args.seeds, args.models, args.data = "0", "gru", "sequences_csv"
    sweep = ["task=classify", f"data={args.data}", f"model={args.models}", f"seed={args.seeds}"]
    sweep += [*args.overrides, *(QUICK if args.quick else [])]
    with tempfile.TemporaryDirectory(prefix="classify-sweep-") as scratch:
        seconds = hydra_multirun(sweep, Path(scratch))
        runs = finished_runs(Path(scratch), "rnnlab-classify", "test/model/accuracy")
    print(machine_line(info))
    print(f"Sweep wall time {seconds:.0f} s, one process, OMP_NUM_THREADS=1.\n")
    order = runs["param:model.name"].map(args.models.split(",").index)
    print(table(runs.iloc[order.argsort(kind="stable")].reset_index(drop=True)))
    write_json(args.json, {"machine": info, "seconds": seconds, "runs": runs.to_dict("records")})


if __name__ == "__main__":
    main()
