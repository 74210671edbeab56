"""CPU numerics switches: ``trainer.flush_denormal`` and ``trainer.mkldnn``, all four combinations.

``trainer.flush_denormal`` calls ``torch.set_flush_denormal`` (flush-to-zero / denormals-are-zero)
and ``trainer.mkldnn`` sets ``torch.backends.mkldnn.enabled`` (oneDNN kernels, which include a
fused LSTM). Both are process-global, so every measurement runs in a fresh subprocess that goes
through rnnlab's own path: ``configure_cpu``, ``task.load_data``, ``seed_everything`` +
``task.build_model``, the train stage's loaders, ``SequenceModule`` and ``build_trainer`` (logger
False). Throughput is training windows per second over the training part of each epoch (the
validation pass is timed separately); the first epoch is a warm-up and is excluded. Each
(model, setting) runs ``--repeats`` times, round-robin so background load spreads evenly, and
the best run (least disturbed by other work) is reported with the median beside it. Final
train/val losses are compared across the four settings.

    python benchmarks/cpu_settings.py [--models lstm gru rnn] [--epochs 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    add_nice_option,
    apply_nice,
    child_env,
    machine_info,
    machine_line,
    md_table,
    median,
    python,
    quiet_lightning,
    sigterm_exits,
    write_json,
)

COMBOS = list(itertools.product((False, True), (False, True)))  # (flush_denormal, mkldnn)
TORCH_DEFAULT = (False, True)  # what torch does when nobody touches the switches


def current_default() -> tuple[bool, bool]:
    from rnnlab.config import TrainerConfig

    return TrainerConfig().flush_denormal, TrainerConfig().mkldnn


def label(combo: tuple[bool, bool]) -> str:
    flush, mkldnn = combo
    return f"flush_denormal={str(flush).lower()}, mkldnn={str(mkldnn).lower()}"


# --------------------------------------------------------------------------------------------
# worker: one training in this (fresh) process


def worker(args: argparse.Namespace) -> dict[str, Any]:
    quiet_lightning()
    import contextlib
    import io

    import pytorch_lightning as pl
    import torch

    from rnnlab.config import compose, validate
    from rnnlab.lightning.module import SequenceModule
    from rnnlab.lightning.trainer import build_trainer, configure_cpu
    from rnnlab.paths import RunPaths
    from rnnlab.stages.train import _loaders
    from rnnlab.tasks import get_task

    overrides = [
        f"model={args.model}",
        f"trainer.flush_denormal={str(args.flush_denormal).lower()}",
        f"trainer.mkldnn={str(args.mkldnn).lower()}",
        f"trainer.max_epochs={args.epochs + 1}",
    ]
    cfg = validate(compose(overrides))
    task = get_task(cfg.task.name)
    configure_cpu(cfg.trainer)
    if args.threads:
        torch.set_num_threads(args.threads)
    applied = {
        "threads": torch.get_num_threads(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        # With flush-to-zero / denormals-are-zero a denormal operand reads as 0.
        "denormal_flushed": float(torch.tensor([1e-39], dtype=torch.float32) * 1.0) == 0.0,
    }
    data = task.load_data(cfg, RunPaths(Path(args.data_root)))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = task.build_model(cfg, data.meta)
    train, val = _loaders(data, cfg.trainer)

    class PhaseTimer(pl.Callback):
        def __init__(self) -> None:
            self.train_s: list[float] = []
            self.val_s: list[float] = []
            self._t = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._t = time.perf_counter()

        def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                now = time.perf_counter()
                self.train_s.append(now - self._t)
                self._t = now

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                self.val_s.append(time.perf_counter() - self._t)

    timer = PhaseTimer()
    with tempfile.TemporaryDirectory() as ckpt, contextlib.redirect_stdout(io.StringIO()):
        trainer = build_trainer(cfg.trainer, Path(ckpt), False, cfg.task.monitor)[0]
        trainer.callbacks.append(timer)
        trainer.fit(SequenceModule(model, task.loss, cfg.trainer), train, val)
    train_s, val_s = timer.train_s[1:], timer.val_s[1:]
    return {
        "model": args.model,
        "flush_denormal": args.flush_denormal,
        "mkldnn": args.mkldnn,
        "applied": applied,
        "train_windows": len(data.train),
        "val_windows": len(data.val),
        "train_s_per_epoch": sum(train_s) / len(train_s),
        "val_s_per_epoch": sum(val_s) / len(val_s),
        "windows_per_s": len(data.train) / (sum(train_s) / len(train_s)),
        "train_loss": float(trainer.callback_metrics["train/loss"]),
        "val_loss": float(trainer.callback_metrics["val/loss"]),
    }


# --------------------------------------------------------------------------------------------
# parent


def run_one(
    model: str,
    combo: tuple[bool, bool],
    data_root: Path,
    epochs: int,
    threads: int = 0,
    timeout: float | None = None,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [
        python(),
        __file__,
        "--worker",
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--data-root",
        str(data_root),
        "--out",
        str(out),
    ]
    if combo[0]:
        cmd.append("--flush-denormal")
    if combo[1]:
        cmd.append("--mkldnn")
    if threads:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=timeout)
    try:
        if done.returncode != 0:
            raise RuntimeError(f"worker failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    quiet_lightning()
    from rnnlab.config import compose, validate
    from rnnlab.paths import RunPaths
    from rnnlab.stages.prepare import run_prepare

    info = machine_info()
    if args.threads:
        info["torch_threads"] = args.threads
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {label(c): [] for c in COMBOS} for m in args.models
    }
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        run_prepare(validate(compose([])), RunPaths(Path(tmp)))
        for rep in range(args.repeats):
            for model in args.models:
                # Rotate the order of the four settings between repeats.
                order = COMBOS[rep % 4 :] + COMBOS[: rep % 4]
                for combo in order:
                    res = run_one(model, combo, Path(tmp), args.epochs, args.threads)
                    raw[model][label(combo)].append(res)
                    print(
                        f"  repeat {rep + 1}/{args.repeats} {model:5s} {label(combo):38s} "
                        f"{res['windows_per_s']:7.0f} windows/s",
                        file=sys.stderr,
                        flush=True,
                    )
        threads = threads_study(args, Path(tmp)) if args.threads_study else None
    summary: dict[str, Any] = {}
    for model, by_combo in raw.items():
        rows = {}
        for name, runs in by_combo.items():
            rows[name] = {
                "windows_per_s": max(r["windows_per_s"] for r in runs),
                "windows_per_s_median": median([r["windows_per_s"] for r in runs]),
                "windows_per_s_repeats": [r["windows_per_s"] for r in runs],
                "train_s_per_epoch": median([r["train_s_per_epoch"] for r in runs]),
                "val_s_per_epoch": median([r["val_s_per_epoch"] for r in runs]),
                "train_loss": runs[0]["train_loss"],
                "val_loss": runs[0]["val_loss"],
                "losses_repeatable": len({(r["train_loss"], r["val_loss"]) for r in runs}) == 1,
                "applied": runs[0]["applied"],
            }
        losses = {(r["train_loss"], r["val_loss"]) for r in rows.values()}
        ref = rows[label(TORCH_DEFAULT)]
        max_rel = max(
            abs(r[k] - ref[k]) / abs(ref[k])
            for r in rows.values()
            for k in ("train_loss", "val_loss")
        )
        best = max(rows, key=lambda n: rows[n]["windows_per_s"])

        def switch_effect(index: int, rows: dict[str, Any] = rows) -> float:
            """Largest relative loss change from flipping one switch, the other held fixed."""
            worst = 0.0
            for combo in COMBOS:
                flipped = list(combo)
                flipped[index] = not flipped[index]
                a, b = rows[label(combo)], rows[label(tuple(flipped))]
                for k in ("train_loss", "val_loss"):
                    worst = max(worst, abs(a[k] - b[k]) / abs(b[k]))
            return worst

        summary[model] = {
            "settings": rows,
            "losses_identical": len(losses) == 1,
            "max_rel_loss_diff": max_rel,
            "flush_denormal_rel_loss_diff": switch_effect(0),
            "mkldnn_rel_loss_diff": switch_effect(1),
            "losses_repeatable": all(r["losses_repeatable"] for r in rows.values()),
            "fastest": best,
        }
    return {
        "machine": info,
        "epochs_timed": args.epochs,
        "repeats": args.repeats,
        "current_default": label(current_default()),
        "torch_default": label(TORCH_DEFAULT),
        "models": summary,
        "threads_study": threads,
        "threads_epochs": args.threads_epochs,
    }


def threads_study(args: argparse.Namespace, data_root: Path) -> dict[str, Any]:
    """The default LSTM at rnnlab's default settings with 1 vs 2 torch threads, on an idle
    machine and with one core taken by a busy process (what a parallel sweep, a second
    `dvc repro` or a test run does to a training on 2 cores)."""
    combo = current_default()
    out: dict[str, Any] = {}
    for load in ("idle", "one busy core"):
        busy = None
        if load != "idle":
            busy = subprocess.Popen([python(), "-c", "while True: pass"])
        try:
            for threads in (1, 2):
                runs: list[float | None] = []
                for _ in range(args.repeats):
                    try:
                        res = run_one(
                            "lstm",
                            combo,
                            data_root,
                            args.threads_epochs,
                            threads,
                            timeout=args.timeout,
                        )
                        runs.append(res["windows_per_s"])
                    except subprocess.TimeoutExpired:
                        runs.append(None)
                    shown = "timeout" if runs[-1] is None else f"{runs[-1]:.0f} windows/s"
                    print(f"  threads {threads} ({load}): {shown}", file=sys.stderr, flush=True)
                done = [r for r in runs if r is not None]
                out[f"{threads} thread(s), {load}"] = {
                    "threads": threads,
                    "load": load,
                    "windows_per_s": max(done) if done else None,
                    "repeats": runs,
                }
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    return out


def to_markdown(res: dict[str, Any]) -> str:
    lines = [
        "### CPU settings: trainer.flush_denormal × trainer.mkldnn",
        "",
        machine_line(res["machine"]),
        f"Training throughput through build_trainer (logger off), {res['epochs_timed']} timed "
        f"epochs after 1 warm-up, each run in a fresh process; best and median of "
        f"{res['repeats']} round-robin repeats. Speed-up (on the best runs) is against torch's "
        f"own defaults "
        f"({res['torch_default']}); rnnlab's current default is {res['current_default']}.",
        "",
    ]
    if not res["models"]:
        lines.append("(No models measured: threads study only.)")
    else:
        rows = []
        for model, m in res["models"].items():
            ref = m["settings"][res["torch_default"]]["windows_per_s"]
            for name, s in m["settings"].items():
                tags = []
                if name == res["current_default"]:
                    tags.append("rnnlab default")
                if name == res["torch_default"]:
                    tags.append("torch default")
                if name == m["fastest"]:
                    tags.append("fastest")
                reps = s["windows_per_s_repeats"]
                rows.append(
                    [
                        model,
                        name + (f" ({', '.join(tags)})" if tags else ""),
                        f"{s['windows_per_s']:.0f}",
                        f"{s['windows_per_s_median']:.0f}",
                        f"{min(reps):.0f}–{max(reps):.0f}",
                        f"{s['windows_per_s'] / ref:.2f}x",
                        f"{s['val_s_per_epoch']:.3f}",
                        f"{s['train_loss']:.6g}",
                        f"{s['val_loss']:.6g}",
                    ]
                )
        lines.append(
            md_table(
                [
                    "model",
                    "setting",
                    "train windows/s (best)",
                    "median",
                    "repeats min–max",
                    "speed-up vs torch default",
                    "val s/epoch",
                    "final train loss",
                    "final val loss",
                ],
                rows,
            )
        )
        lines.append("")

        def effect(diff: float) -> str:
            return "no change (bit-identical)" if diff == 0 else f"relative change up to {diff:.1e}"

        for model, m in res["models"].items():
            same = (
                "bit-identical"
                if m["losses_identical"]
                else (
                    f"not identical (max relative difference {m['max_rel_loss_diff']:.2e}; "
                    f"flush_denormal: {effect(m['flush_denormal_rel_loss_diff'])}, "
                    f"mkldnn: {effect(m['mkldnn_rel_loss_diff'])})"
                )
            )
            if m["losses_repeatable"]:
                same += ", and identical across the repeats of each setting"
            applied = all(
                s["applied"]["mkldnn_enabled"] == ("mkldnn=true" in name)
                and s["applied"]["denormal_flushed"] == ("flush_denormal=true" in name)
                for name, s in m["settings"].items()
            )
            lines.append(
                f"- {model}: losses across the four settings are {same}; fastest: {m['fastest']}; "
                f"switches verified in the worker: {'yes' if applied else 'NO'}."
            )
    if res.get("threads_study"):
        study = res["threads_study"]
        base = study.get("2 thread(s), idle", {}).get("windows_per_s")
        rows = []
        for r in study.values():
            shown = ", ".join("timeout" if v is None else f"{v:.0f}" for v in r["repeats"])
            best = r["windows_per_s"]
            rows.append(
                [
                    r["threads"],
                    r["load"],
                    "timeout" if best is None else f"{best:.0f}",
                    shown,
                    "—" if best is None or not base else f"{best / base:.2f}x",
                ]
            )
        lines += [
            "",
            f"Torch intra-op threads (LSTM, rnnlab default switches, {res['threads_epochs']} "
            f"timed epochs; best of {res['repeats']}; 'one busy core' = a `while True: pass` "
            "process running alongside):",
            "",
            md_table(
                [
                    "torch threads",
                    "other load",
                    "train windows/s (best)",
                    "all repeats",
                    "vs 2 threads idle",
                ],
                rows,
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="*",
        default=["lstm", "gru", "rnn"],
        help="conf/model names (none: only the --threads-study)",
    )
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs (plus 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per setting")
    parser.add_argument(
        "--threads-study",
        action="store_true",
        help="also compare 1 vs 2 torch threads, idle and with one core busy (LSTM)",
    )
    parser.add_argument(
        "--threads-epochs", type=int, default=2, help="timed epochs in the threads study"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds per threads-study run before giving up"
    )
    add_nice_option(parser)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    # worker mode (one run in a fresh process)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="lstm", help=argparse.SUPPRESS)
    parser.add_argument("--flush-denormal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mkldnn", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-root", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads in every run (default: torch's, = CPU cores)",
    )
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    sigterm_exits()
    if args.worker:
        write_json(args.out, worker(args))
        return 0
    res = measure(args)
    write_json(args.json, res)
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
