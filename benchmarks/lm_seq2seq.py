"""Language modelling and sequence-to-sequence targets, through the real front door.

Two Hydra multiruns (``python -m rnnlab.app -m ...``), ``MLFLOW_TRACKING_URI`` pointing at a
temporary sqlite file; the tables are read back from MLflow, as a user would see them.

``lm``: every recurrent variant on the default corpus (CPython's ``pydoc_data.topics``), char
level. Test bits per character against the unigram and bigram baselines on the same test
tokens, and training throughput: training characters processed per second of training wall
time (``train_windows * bptt * epochs / train_seconds``; validation passes included, so this is
a lower bound on the pure training speed).

``seq2seq``: date normalisation with additive attention and without any, same model otherwise.
Exact match overall and per source-length quartile (the last quartile: the longest inputs).

``reverse``: the same two models on a user pairs file (``data=pairs_tsv``) written here: random
strings of 4-30 letters and their reversals, where the length of the input matters most.

    python benchmarks/lm_seq2seq.py [--part lm seq2seq reverse] [--lm-epochs 15]
        [--seq2seq-epochs 5] [--reverse-epochs 6] [--json out.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    finished_runs,
    hydra_multirun,
    machine_info,
    machine_line,
    md_table,
    sigterm_exits,
    write_json,
)

LM_VARIANTS = "rnn,rnn_relu,lstm,gru"
SEQ2SEQ_MODEL = ["model=gru", "model.num_layers=1", "model.hidden_size=64"]
CHAR_BANDS = [0, 15, 30, 45, 60, 80]  # source length bands (characters) for the detail table


def multirun(overrides: list[str], scratch: Path) -> float:
    return hydra_multirun([*overrides, "trainer.grad_flow_batches=0"], scratch)


def lm_table(scratch: Path) -> tuple[str, list[dict[str, Any]]]:
    results = []
    for run in finished_runs(scratch, "rnnlab-lm", "test/model/bpc"):
        m, p = run.data.metrics, run.data.params
        chars = m["train/train_windows"] * int(p["task.bptt"]) * m["train/epochs"]
        results.append(
            {
                "model": p["model.name"],
                "test_bpc": m["test/model/bpc"],
                "val_bpc": m["val/model/bpc"],
                "bigram_bpc": m["test/bigram/bpc"],
                "unigram_bpc": m["test/unigram/bpc"],
                "perplexity": m["test/model/perplexity"],
                "epochs": m["train/epochs"],
                "train_seconds": m["train/train_seconds"],
                "chars_per_second": chars / m["train/train_seconds"],
                "parameters": m["train/n_parameters"],
            }
        )
    rows = [
        [
            r["model"],
            f"{r['test_bpc']:.3f}",
            f"{r['bigram_bpc'] - r['test_bpc']:+.3f}",
            f"{r['perplexity']:.2f}",
            f"{r['epochs']:.0f}",
            f"{r['train_seconds']:.0f}",
            f"{r['chars_per_second']:,.0f}",
            f"{r['parameters']:,.0f}",
        ]
        for r in results
    ]
    if results:
        rows.append(
            ["*bigram baseline*", f"{results[0]['bigram_bpc']:.3f}", "", "", "", "", "", ""]
        )
        rows.append(
            ["*unigram baseline*", f"{results[0]['unigram_bpc']:.3f}", "", "", "", "", "", ""]
        )
    header = [
        "variant",
        "test bits/char",
        "better than bigram by",
        "perplexity",
        "epochs",
        "train s",
        "train chars/s (CPU)",
        "parameters",
    ]
    return md_table(header, rows), results


def seq2seq_table(scratch: Path, dates: bool) -> tuple[str, list[dict[str, Any]]]:
    """Both runs' test metrics and exact match by source-length quartile; for dates also by
    band of source characters and which part of the wrong dates is wrong."""
    results = []
    # Each job directory's .rnnlab/run.json names its MLflow run: the by-length table is there.
    job_of_run = {
        json.loads((job / ".rnnlab/run.json").read_text())["run_id"]: job
        for job in (scratch / "multirun").iterdir()
        if (job / ".rnnlab/run.json").exists()
    }
    for run in finished_runs(scratch, "rnnlab-seq2seq", "test/model/exact_match"):
        m, p = run.data.metrics, run.data.params
        job = job_of_run[run.info.run_id]
        table = pd.read_csv(job / "plots/evaluate/seq2seq_exact_match_by_length.csv")
        results.append(
            {
                "attention": p["task.attention"],
                "exact_match": m["test/model/exact_match"],
                "exact_match_longest": m["test/model/exact_match_longest"],
                "token_accuracy": m["test/model/token_accuracy"],
                "bleu": m["test/model/bleu"],
                "epochs": m["train/epochs"],
                "train_seconds": m["train/train_seconds"],
                "by_length": table.to_dict("records"),
                **(date_errors(test_predictions(job)) if dates else {}),
            }
        )
    rows = [
        [
            r["attention"],
            f"{100 * r['exact_match']:.1f}%",
            f"{100 * r['exact_match_longest']:.1f}%",
            f"{100 * r['token_accuracy']:.2f}%",
            f"{r['bleu']:.2f}",
            f"{r['epochs']:.0f}",
            f"{r['train_seconds']:.0f}",
        ]
        for r in results
    ]
    header = [
        "attention",
        "test exact match",
        "exact match, longest quartile",
        "token accuracy",
        "BLEU",
        "epochs",
        "train s",
    ]
    quartiles = [
        [
            r["attention"],
            f"{b['min_length']}–{b['max_length']}",
            b["pairs"],
            f"{b['exact_match']:.1%}",
        ]
        for r in results
        for b in r["by_length"]
    ]
    text = md_table(header, rows)
    text += "\n\n" + md_table(["attention", "source length", "pairs", "exact match"], quartiles)
    if dates:
        bands = [
            [r["attention"], b["source_chars"], b["pairs"], f"{b['exact_match']:.1%}"]
            for r in results
            for b in r["by_chars"]
        ]
        text += "\n\n" + md_table(["attention", "source characters", "pairs", "exact match"], bands)
        for r in results:
            text += (
                f"\n\n{r['attention']}: {r['wrong']} wrong dates, {r['wrong_year_right']} of "
                "them with the right year"
            )
    return text, results


def test_predictions(job: Path) -> pd.DataFrame:
    """The job's test split with the trained model's outputs, through the logged-model path."""
    from rnnlab.data.seq2seq import load_prepared
    from rnnlab.model_store import load_trained
    from rnnlab.tasks import get_task

    test = pd.DataFrame(load_prepared(job / "data/prepared", ("test",))[1]["test"])
    trained = load_trained(job / "models")
    predicted = get_task("seq2seq").predict_frame(trained, test[["source"]])
    return test.assign(prediction=predicted["prediction"].to_numpy())


def date_errors(test: pd.DataFrame) -> dict[str, Any]:
    """Exact match per band of source characters, and how many wrong dates get the year."""
    right = test["prediction"] == test["target"]
    by_band = right.groupby(pd.cut(test["source"].str.len(), CHAR_BANDS), observed=True)
    by_chars = [
        {"source_chars": f"{b.left + 1}-{b.right}", "pairs": len(part), "exact_match": part.mean()}
        for b, part in by_band
    ]
    wrong = test[~right]
    year_right = int((wrong["prediction"].str[:4] == wrong["target"].str[:4]).sum())
    return {"by_chars": by_chars, "wrong": len(wrong), "wrong_year_right": year_right}


def seq2seq_part(scratch: Path, data: list[str], epochs: int) -> dict[str, Any]:
    """The same encoder-decoder with additive attention and without, on ``data``."""
    overrides = ["task=seq2seq", *data, "task.attention=additive,none", *SEQ2SEQ_MODEL]
    seconds = multirun([*overrides, f"trainer.max_epochs={epochs}"], scratch)
    table, results = seq2seq_table(scratch, dates="data=dates" in data)
    return {"seconds": seconds, "runs": results, "table": table}


def write_reversal_pairs(path: Path, n: int = 6000, seed: int = 0) -> None:
    """Random letter strings of 4-30 characters and their reversals, as a user TSV file.

    Reversal needs the first source character at the last output step: the classic case where a
    fixed-size final state runs out and attention should not (Bahdanau et al. 2015)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghij"))
    lines = []
    for length in rng.integers(4, 31, n):
        text = "".join(rng.choice(letters, length))
        lines.append(f"{text}\t{text[::-1]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        nargs="+",
        default=["lm", "seq2seq", "reverse"],
        choices=["lm", "seq2seq", "reverse"],
    )
    parser.add_argument("--reverse-epochs", type=int, default=6)
    parser.add_argument("--lm-epochs", type=int, default=15)
    parser.add_argument("--seq2seq-epochs", type=int, default=5)
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--keep", help="keep the runs (MLflow db, job dirs) in this directory")
    args = parser.parse_args()
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        # Its mlflow.db would mix earlier runs into these tables.
        parser.error(f"--keep {args.keep} is not empty; give a new directory.")
    sigterm_exits()
    info = machine_info()
    report: dict[str, Any] = {"machine": info}
    with tempfile.TemporaryDirectory(prefix="lm-seq2seq-") as tmp:
        scratch = Path(args.keep or tmp)
        if "lm" in args.part:
            lm_dir = scratch / "lm"
            seconds = multirun(
                [
                    "task=lm",
                    "data=pydoc_topics",
                    f"model={LM_VARIANTS}",
                    f"trainer.max_epochs={args.lm_epochs}",
                ],
                lm_dir,
            )
            table, results = lm_table(lm_dir)
            report["lm"] = {"seconds": seconds, "runs": results, "table": table}
        if "seq2seq" in args.part:
            data = ["data=dates"]
            report["seq2seq"] = seq2seq_part(scratch / "seq2seq", data, args.seq2seq_epochs)
        if "reverse" in args.part:
            rev_dir = scratch / "reverse"
            rev_dir.mkdir(parents=True, exist_ok=True)
            write_reversal_pairs(rev_dir / "pairs.tsv")
            data = ["data=pairs_tsv", f"data.path={rev_dir / 'pairs.tsv'}", "data.level=char"]
            report["reverse"] = seq2seq_part(rev_dir, data, args.reverse_epochs)
    print()
    print(machine_line(info))
    for part in ("lm", "seq2seq", "reverse"):
        if part in report:
            print(f"\n{part}: sweep wall time {report[part]['seconds']:.0f} s, OMP_NUM_THREADS=1\n")
            print(report[part]["table"])
    write_json(args.json, report)


if __name__ == "__main__":
    main()
