"""Language modelling and sequence-to-sequence targets, through the real front door.

Hydra multiruns into a temporary MLflow store, read back with ``rnnlab.report``. ``lm``: every
recurrent cell on ``pydoc_topics``: test bits per character against the unigram and bigram
baselines, and training characters per second of training wall time (validation included).
``seq2seq``: date normalisation with additive attention and without: exact match overall, per
source-length quartile and band of characters, wrong dates with the right year. ``reverse``:
the same two models on a user pairs file of random letter strings and their reversals.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from _common import finish, finished_runs, hydra_multirun, md_table, options, start

SEQ2SEQ_MODEL = ["model=gru", "model.num_layers=1", "model.hidden_size=64"]
CHAR_BANDS = [0, 15, 30, 45, 60, 80]  # source length bands (characters) for the detail table
QUICK = {  # a small model (experiment=quick), one epoch, a few thousand tokens
    "lm": ["experiment=quick", "data.max_chars=20000", "trainer.batch_size=16", "task.bptt=32"],
    "seq2seq": ["experiment=quick", "data.n_train=300", "data.n_val=50", "data.n_test=50"],
}


def lm_part(scratch: Path, models: str, epochs: int, extra: list[str]) -> tuple:
    sweep = ["task=lm", "data=pydoc_topics", f"model={models}"]
    seconds = hydra_multirun([*sweep, f"trainer.max_epochs={epochs}", *extra], scratch)
    runs = finished_runs(scratch, "rnnlab-lm", "test/model/bpc")
    chars = runs["train/train_windows"] * runs["param:task.bptt"].astype(int) * runs["train/epochs"]
    runs["chars_per_second"] = chars / runs["train/train_seconds"]
    rows = [
        [
            r["param:model.name"],
            f"{r['test/model/bpc']:.3f}",
            f"{r['test/bigram/bpc'] - r['test/model/bpc']:+.3f}",
            f"{r['test/model/perplexity']:.2f}",
            f"{r['train/epochs']:.0f}",
            f"{r['train/train_seconds']:.0f}",
            f"{r['chars_per_second']:,.0f}",
            f"{r['train/n_parameters']:,.0f}",
        ]
        for _, r in runs.iterrows()
    ]
    for baseline in ("bigram", "unigram"):
        rows.append([f"*{baseline} baseline*", f"{runs[f'test/{baseline}/bpc'][0]:.3f}"])
    header = ["variant", "test bits/char", "better than bigram by", "perplexity", "epochs"]
    header += ["train s", "train chars/s (CPU)", "parameters"]
    return seconds, runs, md_table(header, rows)


def seq2seq_part(scratch: Path, data: list[str], epochs: int, extra: list[str]) -> tuple:
    """The same encoder-decoder with additive attention and without, on ``data``."""
    sweep = ["task=seq2seq", *data, "task.attention=additive,none", *SEQ2SEQ_MODEL]
    seconds = hydra_multirun([*sweep, f"trainer.max_epochs={epochs}", *extra], scratch)
    runs = finished_runs(scratch, "rnnlab-seq2seq", "test/model/exact_match")
    # Each job directory's .rnnlab/run.json names its MLflow run: its test outputs are there.
    job_of_run = {
        json.loads((job / ".rnnlab/run.json").read_text())["run_id"]: job
        for job in (scratch / "multirun").iterdir()
        if (job / ".rnnlab/run.json").exists()
    }
    rows, details = [], []
    for _, r in runs.iterrows():
        job, attention = job_of_run[r["run_id"]], r["param:task.attention"]
        rows.append(
            [
                attention,
                f"{100 * r['test/model/exact_match']:.1f}%",
                f"{100 * r['test/model/exact_match_longest']:.1f}%",
                f"{100 * r['test/model/token_accuracy']:.2f}%",
                f"{r['test/model/bleu']:.2f}",
                f"{r['train/epochs']:.0f}",
                f"{r['train/train_seconds']:.0f}",
            ]
        )
        quartiles = pd.read_csv(job / "plots/evaluate/seq2seq_exact_match_by_length.csv")
        for _, b in quartiles.iterrows():
            length = f"quartile {b['min_length']}–{b['max_length']}"
            details.append([attention, length, b["pairs"], f"{b['exact_match']:.1%}"])
        if "data=dates" in data:
            details += date_errors(attention, test_predictions(job))
    header = ["attention", "test exact match", "exact match, longest quartile", "token accuracy"]
    text = md_table([*header, "BLEU", "epochs", "train s"], rows) + "\n\n"
    text += md_table(["attention", "source length", "pairs", "exact match"], details)
    return seconds, runs, text


def test_predictions(job: Path) -> pd.DataFrame:
    """The job's test split with the trained model's outputs, through the logged-model path."""
    from rnnlab.data.seq2seq import load_prepared
    from rnnlab.model_store import load_trained
    from rnnlab.tasks import get_task

    test = pd.DataFrame(load_prepared(job / "data/prepared", ("test",))[1]["test"])
    predicted = get_task("seq2seq").predict_frame(load_trained(job / "models"), test[["source"]])
    return test.assign(prediction=predicted["prediction"].to_numpy())


def date_errors(attention: str, test: pd.DataFrame) -> list[list[Any]]:
    """Exact match per band of source characters, and wrong dates with the right year."""
    right = test["prediction"] == test["target"]
    bands = right.groupby(pd.cut(test["source"].str.len(), CHAR_BANDS), observed=True)
    rows = [
        [attention, f"{b.left + 1}-{b.right} chars", len(part), f"{part.mean():.1%}"]
        for b, part in bands
    ]
    wrong = test[~right]
    year_right = int((wrong["prediction"].str[:4] == wrong["target"].str[:4]).sum())
    return [*rows, [attention, "wrong dates, year right", len(wrong), year_right]]


def write_reversal_pairs(path: Path, n: int = 6000, seed: int = 0) -> None:
    """Random strings of 4-30 letters and their reversals, as a user TSV file: the first source
    character is needed at the last output step, where a fixed-size final state runs out."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghij"))
    texts = ["".join(rng.choice(letters, length)) for length in rng.integers(4, 31, n)]
    path.write_text("".join(f"{t}\t{t[::-1]}\n" for t in texts), encoding="utf-8")


def main() -> None:
    parser = options(__doc__)
    parts = ["lm", "seq2seq", "reverse"]
    parser.add_argument("--part", nargs="+", choices=parts, help="default: all (quick: lm seq2seq)")
    parser.add_argument("--lm-epochs", type=int, default=15)
    parser.add_argument("--seq2seq-epochs", type=int, default=5)
    parser.add_argument("--reverse-epochs", type=int, default=6)
    parser.add_argument("--keep", help="keep the runs (MLflow db, job dirs) in this new directory")
    args = parser.parse_args()
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        # Its mlflow.db would mix earlier runs into these tables.
        parser.error(f"--keep {args.keep} is not empty; give a new directory.")
    info = start(args)
    if args.quick:  # one epoch on small data; `reverse` is seq2seq's code on other data
        args.part = args.part or ["lm", "seq2seq"]
        args.lm_epochs = args.seq2seq_epochs = args.reverse_epochs = 1
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lm-seq2seq-") as tmp:
        scratch = Path(args.keep or tmp)
        for part in args.part or parts:
            if part == "lm":
                models = "rnn" if args.quick else "rnn,rnn_relu,lstm,gru"
                extra = QUICK["lm"] if args.quick else []
                report[part] = lm_part(scratch / "lm", models, args.lm_epochs, extra)
            elif part == "seq2seq":
                extra = QUICK["seq2seq"] if args.quick else []
                report[part] = seq2seq_part(
                    scratch / "dates", ["data=dates"], args.seq2seq_epochs, extra
                )
            else:
                pairs = scratch / "reverse" / "pairs.tsv"
                pairs.parent.mkdir(parents=True, exist_ok=True)
                write_reversal_pairs(pairs, n=400 if args.quick else 6000)
                data = ["data=pairs_tsv", f"data.path={pairs}", "data.level=char"]
                report[part] = seq2seq_part(pairs.parent, data, args.reverse_epochs, [])
    text = "\n".join(
        f"\n{part}: sweep wall time {seconds:.0f} s, OMP_NUM_THREADS=1\n\n{table}"
        for part, (seconds, _, table) in report.items()
    )
    runs = {part: runs.to_dict("records") for part, (_, runs, _) in report.items()}
    finish(info, text, args.json, {"runs": runs})


if __name__ == "__main__":
    main()
