"""Defaults chosen at a fixed budget: each candidate trains for the same CPU time, one thread.

For a task and corpus, every candidate (a named list of config overrides, below) runs the real
pipeline (prepare -> train -> evaluate) in its own process under ``trainer.max_time``, with
Lightning's budget clock switched from wall time to the process's CPU time, so a candidate
gets the same amount of computation whatever else the (shared) machine is doing. Reports the
test and validation figures, epochs run and CPU-seconds (fitting budget and whole process).

    nice -n 10 python benchmarks/budget_defaults.py --task lm --corpus pydoc_topics \\
        --candidates previous,lstm256 --budget 600
    python benchmarks/budget_defaults.py --task lm --quick      # seconds: a smoke check
    python benchmarks/budget_defaults.py --task classify --corpus sentiment --budget 600

Corpora: ``pydoc_topics`` (the default LM corpus), ``docstrings`` (CPython's standard-library
docstrings, about 1.6 M characters, a second text that exists offline) and ``sentiment`` (a
generated, synthetic labelled corpus, see ``sentiment_text``).
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    child_env,
    machine_info,
    machine_line,
    md_table,
    python,
    sigterm_exits,
    write_json,
)

COMMON = ["logger=none", "trainer.num_threads=1", "trainer.grad_flow_batches=0"]

# The search: named candidates per task. `previous` is the default before the budget study.
CANDIDATES: dict[str, dict[str, list[str]]] = {
    "lm": {
        "previous": [
            "model=lstm",
            "model.hidden_size=64",
            "model.num_layers=2",
            "task.bptt=64",
            "task.embedding_dim=64",
            "trainer.max_epochs=40",
            "trainer.batch_size=64",
            "trainer.optimizer.lr=0.003",
            "trainer.scheduler.name=plateau",
            "trainer.early_stopping_patience=8",
        ],
        "current": [],  # whatever conf/ says now
        "lstm256": [
            "model=lstm",
            "model.hidden_size=256",
            "model.num_layers=1",
            "model.dropout=0.1",
            "task.bptt=100",
            "task.embedding_dim=64",
            "trainer.max_epochs=100",
            "trainer.batch_size=64",
            "trainer.optimizer.lr=0.003",
            "trainer.scheduler.name=cosine",
            "trainer.scheduler.warmup=0.02",
        ],
    },
    "classify": {
        "previous": [
            "model=lstm",
            "model.hidden_size=64",
            "model.num_layers=2",
            "trainer.max_epochs=40",
            "trainer.scheduler.name=plateau",
            "trainer.early_stopping_patience=8",
        ],
        "current": [],
        "bigru_cosine": [
            "model=bigru",
            "model.hidden_size=64",
            "model.num_layers=1",
            "trainer.max_epochs=10",
            "trainer.scheduler.name=cosine",
            "trainer.scheduler.warmup=0.05",
            "trainer.early_stopping_patience=3",
        ],
    },
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


# --quick: small data and batches, applied after the candidate's own settings.
QUICK = {
    "lm": ["data.max_chars=60000", "trainer.batch_size=16", "evaluate.sample_length=20"],
    "classify": [],
}


def corpus_overrides(task: str, corpus: str, scratch: Path, quick: bool) -> list[str]:
    if task == "lm":
        if corpus == "pydoc_topics":
            return ["task=lm", "data=pydoc_topics"]
        path = scratch / "docstrings.txt"
        path.write_text(docstrings_text(), encoding="utf-8")
        return ["task=lm", "data=text_file", f"data.path={path}"]
    path = scratch / "sentiment.csv"
    sentiment_frame(2000 if quick else 30000).to_csv(path, index=False)
    return ["task=classify", "data=text", f"data.path={path}"]


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


def worker(out: Path, overrides: list[str], budget: float) -> None:
    """One candidate in this process: Lightning's budget clock reads CPU time, not wall time."""
    import types

    import pytorch_lightning.callbacks.timer as lightning_timer

    from rnnlab import config
    from rnnlab.paths import RunPaths
    from rnnlab.pipeline import run_pipeline

    lightning_timer.time = types.SimpleNamespace(monotonic=time.process_time)
    cfg = config.validate(config.compose([*overrides, *COMMON, f"trainer.max_time={budget}"]))
    started = time.process_time()
    result = run_pipeline(cfg, RunPaths(out))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds_total"] = usage.ru_utime + usage.ru_stime
    result["cpu_seconds_pipeline"] = time.process_time() - started
    write_json(out / "result.json", result)


def run_candidate(name: str, overrides: list[str], budget: float, scratch: Path) -> dict:
    out = scratch / name
    command = [python(), __file__, "--worker", str(out), "--budget", str(budget), "--", *overrides]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, env={**child_env(), "OMP_NUM_THREADS": "1"}, check=True)
    return json.loads((out / "result.json").read_text())


def row(task: str, name: str, result: dict) -> list[Any]:
    test, train = result["evaluate"]["test"], result["train"]
    if task == "lm":
        figures = [
            f"{test['model']['loss']:.3f}",
            f"{result['evaluate']['val']['model']['loss']:.3f}",
        ]
        figures += [
            f"{test[b]['loss']:.3f}" if b in test else "–" for b in ("bigram", "kneser_ney")
        ]
    else:
        figures = [f"{test['model']['accuracy']:.3f}", f"{test['model']['macro_f1']:.3f}"]
        figures += [
            f"{test[b]['accuracy']:.3f}" if b in test else "–" for b in ("logistic", "tfidf")
        ]
    return [
        name,
        *figures,
        train["epochs"],
        f"{train['train_seconds']:.0f}",
        f"{result['cpu_seconds_total']:.0f}",
    ]


def header(task: str) -> list[str]:
    if task == "lm":
        figures = ["test nats/char", "val nats/char", "test bigram", "test Kneser-Ney"]
    else:
        figures = ["test accuracy", "test macro-F1", "test logistic", "test TF-IDF"]
    return ["candidate", *figures, "epochs", "fit wall s", "CPU s (process)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(CANDIDATES), default="lm")
    parser.add_argument("--corpus", default=None, help="pydoc_topics | docstrings | sentiment")
    parser.add_argument("--candidates", default="previous,current")
    parser.add_argument("--budget", type=float, default=600.0, help="CPU-seconds of fitting")
    parser.add_argument("--quick", action="store_true", help="5-second budgets, small data")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker), args.overrides, args.budget)
        return
    sigterm_exits()
    corpus = args.corpus or ("pydoc_topics" if args.task == "lm" else "sentiment")
    budget = 5.0 if args.quick else args.budget
    print(machine_line(machine_info()), flush=True)
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="rnnlab-budget-") as tmp:
        scratch = Path(tmp)
        data = corpus_overrides(args.task, corpus, scratch, args.quick)
        for name in args.candidates.split(","):
            overrides = [*data, *CANDIDATES[args.task][name], *(QUICK[args.task] * args.quick)]
            result = run_candidate(name, overrides, budget, scratch)
            results[name] = result
            rows.append(row(args.task, name, result))
            print(md_table(header(args.task), rows[-1:]), flush=True)
    print(f"\n{args.task} on {corpus}, {budget:.0f} CPU-seconds of fitting per candidate:\n")
    print(md_table(header(args.task), rows))
    write_json(args.json, results)


if __name__ == "__main__":
    main()
