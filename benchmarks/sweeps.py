"""Sweeps through the real front door, read back from MLflow with ``rnnlab.report``.

Every part runs ``python -m rnnlab.app -m ...`` into its own temporary MLflow store and job
folder (``--keep DIR``: kept in that new directory), one torch thread per job.
``classify``: every model variant on JapaneseVowels over ``--seeds``: test accuracy and CPU
training time against the majority and logistic baselines. ``parallel``: 8 forecasting jobs
one at a time and with 2 joblib workers, each in a brand-new store (the case that races
without the parent-side setup): wall time, finished runs in the right experiment, runs
misfiled under ``Default`` (a lost or misfiled run fails the script). ``optuna``:
``hparams_search=forecast_grid`` (32 jobs) against ``optuna_forecast`` (TPE, median pruning,
10 trials); target: the grid's best validation loss within a third of its trials. ``lm``: every
recurrent cell on ``pydoc_topics``, bits per character against the unigram and bigram
baselines, training characters per second of training wall time (validation included).
``seq2seq``: date normalisation with additive attention and without: exact match overall, per
source-length quartile and band of characters, wrong dates with the right year. ``reverse``:
the same two models on random letter strings and their reversals (``data=pairs_tsv``).
"""

from __future__ import annotations

import itertools
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from _common import (
    finish,
    finished_runs,
    hydra_multirun,
    md_table,
    options,
    start,
    tracking_uri,
    verdict,
)

PARTS = ["classify", "parallel", "optuna", "lm", "seq2seq", "reverse"]
VARIANTS = "rnn,rnn_relu,lstm,gru,bilstm,bigru,lstm_attn,mlp,transformer"
# 8 forecasting jobs: enough computation per job that it, not start-up and tracking writes,
# dominates the wall time.
PARALLEL_SWEEP = ["model=rnn,lstm,gru,mlp", "model.hidden_size=16,32"]
OPTUNA_METRIC = "train/best_val_loss"
SEQ2SEQ_MODEL = ["model=gru", "model.num_layers=1", "model.hidden_size=64"]
CHAR_BANDS = [0, 15, 30, 45, 60, 80]  # source length bands (characters) for the detail table
SHORT = ["trainer.limit_train_batches=0.1"]
QUICK = {  # small data, one (short) epoch
    "classify": ["experiment=quick", "trainer.max_epochs=1"],
    "parallel": ["model=rnn,mlp", "experiment=quick"],
    # the grid narrowed to its two learning rates (both searches: a tenth of an epoch)
    "optuna": [
        "trainer.batch_size=64",
        "model.hidden_size=32",
        "model.num_layers=1",
        "model.dropout=0.0",
    ],
    "lm": ["experiment=quick", "data.max_chars=20000", "trainer.batch_size=16", "task.bptt=32"],
    "seq2seq": ["experiment=quick", "data.n_train=300", "data.n_val=50", "data.n_test=50"],
    "reverse": [],
}


def classify_part(args: Any, scratch: Path) -> tuple[str, Any]:
    data, models, seeds = "japanese_vowels", VARIANTS, args.seeds
    if args.quick:  # the small example file ships with the repository: no sktime loading
        data, models, seeds = "sequences_csv", "gru", "0"
    sweep = ["task=classify", f"data={data}", f"model={models}", f"seed={seeds}", *args.extra]
    seconds = hydra_multirun(sweep, scratch)
    runs = finished_runs(scratch, "rnnlab-classify", "test/model/accuracy")
    order = runs["param:model.name"].map(models.split(",").index)
    runs = runs.iloc[order.argsort(kind="stable")].reset_index(drop=True)
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
    table = md_table([*header, "train s (CPU)", "epochs", "parameters"], rows)
    return f"Sweep wall time {seconds:.0f} s.\n\n{table}", runs.to_dict("records")


def parallel_part(args: Any, scratch: Path) -> tuple[str, Any]:
    from mlflow import MlflowClient

    jobs, epochs = (2, 1) if args.quick else (8, args.parallel_epochs)
    modes = {"sequential": [], "parallel (2 workers)": ["experiment=parallel"]}
    if args.quick:
        del modes["sequential"]
    results = {}
    for mode, overrides in modes.items():
        root = scratch / mode.split()[0]  # empty: a fresh repository, as the target says
        root.mkdir()
        overrides = [*overrides, *(args.extra or PARALLEL_SWEEP), f"trainer.max_epochs={epochs}"]
        seconds = hydra_multirun([*overrides, "trainer.early_stopping_patience=100"], root, root)
        landed = finished_runs(root, "rnnlab-forecast", "test/model/mase")
        client = MlflowClient(tracking_uri(root))
        default = client.get_experiment_by_name("Default")
        stray = len(client.search_runs([default.experiment_id])) if default else 0
        results[mode] = {"seconds": round(seconds, 1), "runs": len(landed), "stray_runs": stray}
    rows = [
        [m, r["seconds"], f"{r['runs']} of {jobs}", r["stray_runs"]] for m, r in results.items()
    ]
    speedup = rows[0][1] / rows[-1][1]
    landed = all(r["runs"] == jobs and not r["stray_runs"] for r in results.values())
    table = md_table(["mode", "wall s", "runs in MLflow", "runs misfiled"], rows)
    payload = {"results": results, "speedup": speedup, "all_landed": landed}
    return f"{table}\nspeed-up: {speedup:.2f}x", payload


def optuna_part(args: Any, scratch: Path) -> tuple[str, Any]:
    import optuna

    trials = 2 if args.quick else 32 // 3
    common = ["experiment=parallel", f"trainer.max_epochs={args.optuna_epochs}"]
    common += ["trainer.num_threads=1", *(SHORT if args.quick else [])]
    started = resource.getrusage(resource.RUSAGE_CHILDREN)
    grid_dir, search_dir = scratch / "grid", scratch / "optuna"
    grid_dir.mkdir()
    search_dir.mkdir()
    grid_s = hydra_multirun(
        ["hparams_search=forecast_grid", *common, *args.extra], grid_dir, grid_dir
    )
    grid = list(finished_runs(grid_dir, "rnnlab-forecast", OPTUNA_METRIC)[OPTUNA_METRIC])
    storage = f"sqlite:///{search_dir / 'optuna.db'}"
    search = ["hparams_search=optuna_forecast", *common, f"hydra.sweeper.n_trials={trials}"]
    search_s = hydra_multirun([*search, f"hydra.sweeper.storage={storage}"], search_dir, search_dir)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime - started.ru_utime - started.ru_stime
    study = optuna.load_study(study_name="rnnlab-forecast", storage=storage)
    ordered = sorted(study.trials, key=lambda t: t.number)
    # A pruned trial's value is its last reported loss; its finished run's best is logged.
    losses = [t.value if t.value is not None else float("inf") for t in ordered]
    curve = list(itertools.accumulate(losses, min))
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in ordered)
    reached = next((i + 1 for i, b in enumerate(curve) if b <= min(grid)), None)
    ok = reached is not None and reached <= max(1, len(grid) // 3)
    best = study.best_trial
    rows = [
        ["grid (forecast_grid)", len(grid), 0, f"{min(grid):.5f}", f"{grid_s:.1f}"],
        [
            "Optuna TPE (optuna_forecast)",
            len(ordered),
            pruned,
            f"{best.value:.5f}",
            f"{search_s:.1f}",
        ],
    ]
    text = f"CPU-seconds of all jobs: {cpu:.0f}.\n\n"
    text += md_table(["search", "trials", "pruned", f"best {OPTUNA_METRIC}", "wall s"], rows)
    text += f"\nOptuna's best so far by trial: {', '.join(f'{b:.5f}' for b in curve)}"
    text += f"\nReached the grid's best at trial {reached} (target: <= {len(grid) // 3}): "
    text += f"{verdict(ok)}. Best trial's settings: {best.params}"
    return text, {"cpu_seconds": cpu, "grid": grid, "curve": curve, "best_params": best.params}


def lm_part(args: Any, scratch: Path) -> tuple[str, Any]:
    models = "rnn" if args.quick else "rnn,rnn_relu,lstm,gru"
    sweep = ["task=lm", "data=pydoc_topics", f"model={models}"]
    seconds = hydra_multirun([*sweep, f"trainer.max_epochs={args.lm_epochs}", *args.extra], scratch)
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
    text = f"Sweep wall time {seconds:.0f} s.\n\n{md_table(header, rows)}"
    return text, runs.to_dict("records")


def seq2seq_part(args: Any, scratch: Path) -> tuple[str, Any]:
    return attention_sweep(scratch, ["data=dates"], args.seq2seq_epochs, args.extra)


def reverse_part(args: Any, scratch: Path) -> tuple[str, Any]:
    pairs = scratch / "pairs.tsv"
    write_reversal_pairs(pairs, n=400 if args.quick else 6000)
    data = ["data=pairs_tsv", f"data.path={pairs}", "data.level=char"]
    return attention_sweep(scratch, data, args.reverse_epochs, args.extra)


def attention_sweep(
    scratch: Path, data: list[str], epochs: int, extra: list[str]
) -> tuple[str, Any]:
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
    return f"Sweep wall time {seconds:.0f} s.\n\n{text}", runs.to_dict("records")


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


def main() -> int:
    parser = options(__doc__)
    parser.add_argument(
        "--part", nargs="+", choices=PARTS, help="default: all (quick: not reverse)"
    )
    parser.add_argument("--keep", help="keep the runs (MLflow db, job dirs) in this new directory")
    parser.add_argument("--seeds", default="0,1,2", help="classify: comma-separated seeds")
    parser.add_argument("--parallel-epochs", type=int, default=6)
    parser.add_argument("--optuna-epochs", type=int, default=5)
    parser.add_argument("--lm-epochs", type=int, default=15)
    parser.add_argument("--seq2seq-epochs", type=int, default=5)
    parser.add_argument("--reverse-epochs", type=int, default=6)
    args = parser.parse_args()
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        # Its mlflow.db would mix earlier runs into these tables.
        parser.error(f"--keep {args.keep} is not empty; give a new directory.")
    info = start(args)
    if args.quick:
        args.part = args.part or PARTS[:-1]  # `reverse` is seq2seq's code on other data
        args.optuna_epochs = args.lm_epochs = args.seq2seq_epochs = args.reverse_epochs = 1
    texts, payload = [], {}
    with tempfile.TemporaryDirectory(prefix="rnnlab-sweeps-") as tmp:
        for part in args.part or PARTS:
            args.extra = QUICK[part] if args.quick else []
            scratch = Path(args.keep or tmp) / part
            scratch.mkdir(parents=True)
            run_part = globals()[f"{part}_part"]  # classify_part, parallel_part, ...
            text, payload[part] = run_part(args, scratch)
            texts.append(f"### {part}\n\n{text}")
    finish(info, "\n\n".join(texts), args.json, payload)
    # A lost or misfiled run is a bug, in a quick run too (the speed-up is only a figure there).
    return 0 if payload.get("parallel", {}).get("all_landed", True) else 1


if __name__ == "__main__":
    sys.exit(main())
