"""Defaults chosen at a fixed budget: each candidate trains for the same CPU time, one thread.

Every candidate (a named set of config overrides, ``CANDIDATES``: the whole search) runs the
real pipeline (prepare -> train -> evaluate) in its own process under ``trainer.max_time``,
with Lightning's budget clock switched from wall time to the process's CPU time, so each gets
the same computation however busy the machine is. Reported: test and validation figures, best
and last epoch, CPU-seconds and the longest silence of the run's log, read through a pipe as
under DVC. Corpora (``CORPORA``): ``docstrings`` is CPython's standard-library docstrings,
``sentiment`` a synthetic labelled corpus (``sentiment_frame``). For the LM, the loss of the
first characters after each validation line break read from a zero state shows how well
generation without a warm-up starts (``line_start_losses``).
"""

from __future__ import annotations

import ast
import random
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import child_env, finish, fresh_process, md_table, options, start, write_json

COMMON = ["logger=none", "trainer.num_threads=1", "trainer.grad_flow_batches=0"]


def cosine(epochs: int, patience: int) -> str:
    """The cosine schedule with 5 % warm-up over ``epochs``, early-stopping ``patience``."""
    return (
        "trainer.scheduler.name=cosine trainer.scheduler.warmup=0.05 "
        f"trainer.max_epochs={epochs} trainer.early_stopping_patience={patience}"
    )


# The search: named candidates per task, each a string of overrides; `previous` is the default
# before the budget study, `current` whatever conf/ says now.
PLATEAU_40 = (
    "model=lstm model.hidden_size=64 model.num_layers=2 trainer.optimizer.lr=0.003 "
    "trainer.max_epochs=40 trainer.scheduler.name=plateau trainer.early_stopping_patience=8"
)
LSTM256 = (
    "model=lstm model.hidden_size=256 model.num_layers=1 model.dropout=0.1 task.bptt=100 "
    "task.embedding_dim=64 trainer.max_epochs=100 trainer.batch_size=64 "
    "trainer.optimizer.lr=0.003 trainer.scheduler.name=cosine trainer.scheduler.warmup=0.02"
)
BIGRU1 = "model=bigru model.num_layers=1"
CANDIDATES: dict[str, dict[str, str]] = {
    "lm": {
        "previous": f"{PLATEAU_40} task.bptt=64 task.embedding_dim=64 trainer.batch_size=64",
        "current": "",
        "zero_state_0.1": "task.zero_state_fraction=0.1",
        "lstm256": LSTM256,
        # Characters per CPU-second do not depend on the batch size here (16-128 rows), so
        # smaller batches buy more updates. (A later override of a key wins.)
        "lstm256_b32": f"{LSTM256} trainer.batch_size=32",
        "lstm256_b32_lr4e3": f"{LSTM256} trainer.batch_size=32 trainer.optimizer.lr=0.004",
    },
    "classify": {
        "previous": PLATEAU_40,
        "current": "",
        "bigru_cosine": f"{BIGRU1} model.hidden_size=64 {cosine(10, 3)}",
        # For the sequence data (japanese_vowels): 4 batches an epoch, so many epochs.
        "lstm_cosine_p3": cosine(40, 3),
        "lstm_cosine_p6": cosine(40, 6),
        "gru_cosine_p6": f"model=gru {cosine(40, 6)}",
        "bigru1_cosine_p6": f"{BIGRU1} {cosine(40, 6)}",
        "bigru1_cosine_e60_p6": f"{BIGRU1} {cosine(60, 6)}",
        "bigru1_cosine_lr1e-2_p6": f"{BIGRU1} {cosine(40, 6)} trainer.optimizer.lr=0.01",
        "bigru_cosine_p6": f"model=bigru {cosine(40, 6)}",
    },
    "seq2seq": {
        "previous": PLATEAU_40,
        "current": "",
        "lstm_cosine_e8": cosine(8, 3),
        "gru1_cosine_e8": f"model=gru model.num_layers=1 {cosine(8, 3)}",
    },
    "longrange": {"previous": PLATEAU_40, "current": "", "lstm_cosine_e20": cosine(20, 4)},
}
# --quick: small data and batches, applied after the candidate's own settings.
QUICK = {
    "lm": "data.max_chars=60000 trainer.batch_size=16 evaluate.sample_length=20",
    "classify": "",
    "seq2seq": "data.n_train=500 data.n_val=100 data.n_test=100",
    "longrange": "data.n_train=500 data.n_val=100 data.n_test=100",
}
# Each task's corpora (the first is its default) and data overrides; lm's docstrings and
# classify's sentiment are written to the scratch folder by `corpus_overrides`.
CORPORA = {
    "lm": {"pydoc_topics": ["data=pydoc_topics"], "docstrings": []},
    "classify": {"sentiment": [], "japanese_vowels": ["data=japanese_vowels"]},
    "seq2seq": {"dates": ["data=dates"]},
    "longrange": {"adding": ["data=adding"], "copy_memory": ["data=copy_memory"]},
}


def docstrings_text() -> str:
    """Docstrings of CPython's standard library (tests excluded), in path order."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    parts = []
    for path in sorted(lib.rglob("*.py")):
        rel = path.relative_to(lib).parts
        if rel[0] in ("test", "site-packages", "idlelib", "lib2to3") or "tests" in rel:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            doc = ast.get_docstring(node) if isinstance(node, kinds) else None
            if doc and len(doc) > 40:
                parts.append(doc)
    return "\n\n".join(parts)


def corpus_overrides(task: str, corpus: str, scratch: Path, quick: bool) -> list[str]:
    if corpus not in CORPORA[task]:
        raise SystemExit(f"--corpus for --task {task}: one of {sorted(CORPORA[task])}")
    generated = scratch / {"docstrings": "docstrings.txt", "sentiment": "sentiment.csv"}.get(
        corpus, ""
    )
    if corpus == "docstrings":
        generated.write_text(docstrings_text(), encoding="utf-8")
        return ["task=lm", "data=text_file", f"data.path={generated}"]
    if corpus == "sentiment":
        sentiment_frame(2000 if quick else 30000).to_csv(generated, index=False)
        return ["task=classify", "data=text", f"data.path={generated}"]
    return [f"task={task}", *CORPORA[task][corpus]]


def sentiment_frame(n: int, seed: int = 0) -> Any:
    """Synthetic reviews whose label needs word order: two clauses joined by "but" (the second
    decides), negation, intensifiers, a few hundred filler words, and 5 % flipped labels."""
    import pandas as pd

    rng = random.Random(seed)
    good = "good great wonderful excellent delightful brilliant charming moving fresh superb"
    bad = "bad awful terrible boring dull horrible clumsy tedious flat weak"
    good, bad = good.split(), bad.split()
    nouns = ["film", "movie", "plot", "acting", "script", "ending", "cast", "pacing", "dialogue"]
    filler = [f"w{i}" for i in range(300)]

    def clause() -> tuple[str, bool]:
        positive = rng.random() < 0.5
        word = rng.choice(good if positive else bad)
        negated = rng.random() < 0.3
        very = rng.choice(["", "", "very ", "really ", "quite "])
        verdict = f"not {very}{word}" if negated else f"{very}{word}"
        noise = " ".join(rng.choices(filler, k=rng.randint(0, 4)))
        return f"the {rng.choice(nouns)} {noise} was {verdict}", positive != negated

    rows = []
    for _ in range(n):
        text, label = clause()
        if rng.random() < 0.5:
            second, label = clause()
            text = f"{text} but {second}"
        if rng.random() < 0.05:
            label = not label
        rows.append((" ".join(text.split()) + " .", "positive" if label else "negative"))
    return pd.DataFrame(rows, columns=["text", "label"])


def line_start_losses(out: Path, length: int = 20, context: int = 100) -> dict[str, float]:
    """Mean loss (nats/token) of the first ``length`` tokens after each val line break, read
    from a zero state (``zero``: where generation without a warm-up starts) and after the
    ``context`` tokens before the line break (``in_context``)."""
    import numpy as np
    import torch
    from torch import nn

    from rnnlab.data.lm import load_prepared
    from rnnlab.data.text_tokens import Vocabulary
    from rnnlab.model_store import load_trained
    from rnnlab.paths import RunPaths

    paths = RunPaths(out)
    trained = load_trained(paths.model_dir)
    meta, splits = load_prepared(paths.prepared_dir)
    ids = torch.from_numpy(np.asarray(splits["val"], dtype=np.int64))  # (N,)
    newline = Vocabulary.from_dict(meta["vocab"]).encode(["\n"], what="newline")[0]
    breaks = (ids == newline).nonzero().flatten()
    breaks = breaks[(breaks >= context) & (breaks + length < len(ids))]  # (N,)
    losses = {}
    with torch.no_grad():
        for name, before in (("zero", 0), ("in_context", context)):
            steps = torch.arange(-before, length + 1)  # the line break at 0
            windows = ids[breaks[:, None] + steps]  # (N, before + length + 1)
            logits, _ = trained.model.step(windows[:, :-1])
            scored = logits[:, -length:].flatten(0, 1), windows[:, -length:].flatten()
            losses[name] = float(nn.functional.cross_entropy(*scored))
    return {**losses, "line_starts": len(breaks)}


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One candidate in this process: Lightning's budget clock reads CPU time, not wall time."""
    import types

    import pandas as pd
    import pytorch_lightning.callbacks.timer as lightning_timer

    from rnnlab import config
    from rnnlab.paths import RunPaths
    from rnnlab.pipeline import run_pipeline

    lightning_timer.time = types.SimpleNamespace(monotonic=time.process_time)
    budget = f"trainer.max_time={spec['budget']}"
    cfg = config.validate(config.compose([*spec["overrides"], *COMMON, budget]))
    out = Path(spec["out"])
    result = run_pipeline(cfg, RunPaths(out))
    # The epoch of the lowest validation loss: the checkpoint that was evaluated.
    curve = pd.read_csv(out / "plots" / "learning_curve.csv")
    result["best_epoch"] = int(curve.loc[curve["val_loss"].idxmin(), "epoch"])
    if cfg.task.name == "lm":
        result["evaluate"]["val"]["line_start"] = line_start_losses(out)
    return result


# Per task: (column, path into the evaluation) of the figures shown; the model's first.
FIGURES = {
    "lm": {
        "test nats/char": "test.model.loss",
        "val nats/char": "val.model.loss",
        "test bigram": "test.bigram.loss",
        "test Kneser-Ney": "test.kneser_ney.loss",
        "val line starts: from zero state": "val.line_start.zero",
        "val line starts: in context": "val.line_start.in_context",
    },
    "classify": {
        "test accuracy": "test.model.accuracy",
        "test macro-F1": "test.model.macro_f1",
        "test logistic": "test.logistic.accuracy",
        "test TF-IDF": "test.tfidf.accuracy",
    },
    "seq2seq": {
        "test exact match": "test.model.exact_match",
        "test token accuracy": "test.model.token_accuracy",
        "exact match, longest quarter": "test.model.exact_match_longest",
    },
    "longrange": {
        "test MSE": "test.model.mse",
        "test cross-entropy": "test.model.cross_entropy",
        "test recall accuracy": "test.model.recall_accuracy",
        "baseline MSE / cross-entropy": "test.baseline",
    },
}
HEADER = ["best val loss", "best / last epoch", "fit wall s", "CPU s", "longest log silence s"]


def figure(evaluation: dict, path: str) -> str:
    value: Any = evaluation
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, dict):  # a baseline row: whichever of its scores the problem has
        value = value.get("mse", value.get("cross_entropy"))
    return "–" if value is None else f"{value:.4f}"


def row(task: str, name: str, result: dict) -> list[Any]:
    train = result["train"]
    return [
        name,
        *(figure(result["evaluate"], path) for path in FIGURES[task].values()),
        f"{train['best_val_loss']:.4f}",
        f"{result['best_epoch']} / {train['epochs']}",
        f"{train['train_seconds']:.0f}",
        f"{result['cpu_s']:.0f}",
        f"{result['longest_silence_s']:.0f}",
    ]


def main() -> None:
    parser = options(__doc__)
    parser.add_argument("--task", choices=sorted(CANDIDATES), default="lm")
    parser.add_argument("--corpus", default=None, help="default: the task's first in CORPORA")
    parser.add_argument("--candidates", default="previous,current")
    parser.add_argument("--budget", type=float, default=600.0, help="CPU-seconds of fitting")
    args = parser.parse_args()
    if args.worker:
        return write_json(args.json, worker(args.worker))
    info = start(args)
    corpus = args.corpus or next(iter(CORPORA[args.task]))
    budget = 5.0 if args.quick else args.budget
    header = ["candidate", *FIGURES[args.task], *HEADER]
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="rnnlab-budget-") as tmp:
        data = corpus_overrides(args.task, corpus, Path(tmp), args.quick)
        for name in args.candidates.split(","):
            overrides = [*data, *CANDIDATES[args.task][name].split()]
            overrides += QUICK[args.task].split() if args.quick else []
            print(f"$ {name}: {' '.join(overrides)}", flush=True)
            # The log goes through a pipe, as under DVC or CI (not a terminal), and the longest
            # wall-clock silence between two of its lines is recorded (target: < 30 s).
            spec = {"out": str(Path(tmp) / name), "overrides": overrides, "budget": budget}
            results[name] = fresh_process(__file__, spec, child_env(OMP_NUM_THREADS="1"), echo=True)
            rows.append(row(args.task, name, results[name]))
            print(md_table(header, rows[-1:]), flush=True)
    text = f"\n{args.task} on {corpus}, {budget:.0f} CPU-seconds of fitting per candidate:\n\n"
    finish(info, text + md_table(header, rows), args.json, results)


if __name__ == "__main__":
    main()
