"""Every model variant on JapaneseVowels, three seeds: test accuracy and CPU training time.

One Hydra multirun through the real front door (``python -m rnnlab.app -m task=classify
data=japanese_vowels model=<all variants> seed=<seeds>``) into a temporary MLflow store, read
back with ``rnnlab.report``: what a user sees in ``mlflow ui``. Baselines (majority class,
logistic regression on summary features) are on the same test split.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import finish, finished_runs, hydra_multirun, md_table, options, start

VARIANTS = "rnn,rnn_relu,lstm,gru,bilstm,bigru,lstm_attn,mlp,transformer"
QUICK = ["experiment=quick", "trainer.max_epochs=1"]


def table(runs) -> str:
    rows = []
    for model, group in runs.groupby("param:model.name", sort=False):
        accuracy = group["test/model/accuracy"]
        rows.append(
            [
                model,
                f"{accuracy.median():.3f}",
                f"{accuracy.min():.3f}–{accuracy.max():.3f}",
                f"{group['test/model/macro_f1'].median():.3f}",
                f"{group['train/train_seconds'].median():.1f}",
                f"{group['train/epochs'].median():.0f}",
                group["param:n_parameters"].iloc[0],
            ]
        )
    for baseline in ("logistic", "majority"):
        acc, f1 = runs[f"test/{baseline}/accuracy"][0], runs[f"test/{baseline}/macro_f1"][0]
        rows.append([f"*{baseline} baseline*", f"{acc:.3f}", "", f"{f1:.3f}", "", "", ""])
    header = ["variant", "test accuracy (median)", "min–max over seeds", "macro-F1"]
    return md_table([*header, "train s (CPU)", "epochs", "parameters"], rows)


def main() -> None:
    parser = options(__doc__)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (Hydra sweep)")
    args = parser.parse_args()
    info = start(args)
    data, models = ("japanese_vowels", VARIANTS)
    if args.quick:  # the small example file ships with the repository: no sktime loading
        data, models, args.seeds = "sequences_csv", "gru", "0"
    sweep = ["task=classify", f"data={data}", f"model={models}", f"seed={args.seeds}"]
    with tempfile.TemporaryDirectory(prefix="classify-sweep-") as scratch:
        seconds = hydra_multirun([*sweep, *(QUICK if args.quick else [])], Path(scratch))
        runs = finished_runs(Path(scratch), "rnnlab-classify", "test/model/accuracy")
    order = runs["param:model.name"].map(models.split(",").index)
    text = f"Sweep wall time {seconds:.0f} s, one process, OMP_NUM_THREADS=1.\n\n"
    text += table(runs.iloc[order.argsort(kind="stable")].reset_index(drop=True))
    finish(info, text, args.json, {"seconds": seconds, "runs": runs.to_dict("records")})


if __name__ == "__main__":
    main()
