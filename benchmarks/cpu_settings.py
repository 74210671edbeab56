"""CPU numerics switches: ``trainer.flush_denormal`` x ``trainer.mkldnn``, all four combinations.

``trainer.flush_denormal`` calls ``torch.set_flush_denormal`` and ``trainer.mkldnn`` sets
``torch.backends.mkldnn.enabled`` (oneDNN kernels, which include a fused LSTM). Both are
process-global, so every measurement runs in a fresh subprocess through rnnlab's own path
(``configure_cpu``, ``task.load_data``, ``seed_everything`` + ``task.build_model``, the train
stage's ``data_loaders``, ``task.lightning_module`` and ``build_trainer``, logger off).
Throughput is training windows per second over the training part of each epoch (validation is
timed separately), after one warm-up epoch. Each (model, setting) runs ``--repeats`` times,
round-robin; the best run is reported with the median beside it, and the final losses of the
four settings are compared. ``--threads-study`` adds torch threads: 1, one per core and an
automatic choice (the idle cores at start), idle and with one core busy, with each run's
CPU-seconds and final losses (how ``trainer.num_threads: 1`` was chosen). ``--quick`` runs
the four settings once each, in this process, on a small model.

    python benchmarks/cpu_settings.py [--models lstm gru rnn] [--epochs 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    child_env,
    machine_line,
    md_table,
    median,
    parser_with_common_options,
    python,
    quiet_lightning,
    start,
    write_json,
)

COMBOS = list(itertools.product((False, True), (False, True)))  # (flush_denormal, mkldnn)
TORCH_DEFAULT = (False, True)  # what torch does when nobody touches the switches


AUTO = -1  # threads: the cores not busy when the run starts


def auto_threads() -> int:
    """The automatic choice measured: cores minus the 1-minute load average, at least 1."""
    return max(1, (os.cpu_count() or 1) - round(os.getloadavg()[0]))


def label(combo: tuple[bool, bool]) -> str:
    return f"flush_denormal={str(combo[0]).lower()}, mkldnn={str(combo[1]).lower()}"


def train_once(spec: dict[str, Any]) -> dict[str, Any]:
    """One training of ``spec['model']`` with the switches of ``spec['combo']``, timed."""
    quiet_lightning()
    import contextlib
    import io

    import pytorch_lightning as pl
    import torch

    from rnnlab.config import compose, validate
    from rnnlab.lightning.trainer import build_trainer, configure_cpu
    from rnnlab.paths import RunPaths
    from rnnlab.stages.train import data_loaders
    from rnnlab.tasks import get_task

    flush, mkldnn = spec["combo"]
    overrides = [*spec["overrides"], f"model={spec['model']}", f"trainer.mkldnn={mkldnn}"]
    overrides += [f"trainer.flush_denormal={flush}", f"trainer.max_epochs={spec['epochs'] + 1}"]
    cfg = validate(compose([o.lower() for o in overrides]))
    task = get_task(cfg.task.name)
    configure_cpu(cfg.trainer)
    if spec["threads"]:
        torch.set_num_threads(auto_threads() if spec["threads"] == AUTO else spec["threads"])
    # The switches took effect: oneDNN's flag, and a denormal operand reads 0 when flushed.
    applied = (float(torch.tensor([1e-39]) * 1.0) == 0.0, bool(torch.backends.mkldnn.enabled))
    data = task.load_data(cfg, RunPaths(Path(spec["data_root"])))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = task.build_model(cfg, data.meta)
    train_s: list[float] = []
    val_s: list[float] = []

    class PhaseTimer(pl.Callback):
        def on_train_epoch_start(self, *_: Any) -> None:
            self.t = time.perf_counter()

        def on_validation_epoch_start(self, trainer: Any, *_: Any) -> None:
            if not trainer.sanity_checking:
                train_s.append(time.perf_counter() - self.t)
                self.t = time.perf_counter()

        def on_validation_epoch_end(self, trainer: Any, *_: Any) -> None:
            if not trainer.sanity_checking:
                val_s.append(time.perf_counter() - self.t)

    with tempfile.TemporaryDirectory() as ckpt, contextlib.redirect_stdout(io.StringIO()):
        trainer = build_trainer(cfg.trainer, Path(ckpt), False, cfg.task.monitor)[0]
        trainer.callbacks.append(PhaseTimer())
        trainer.fit(task.lightning_module(model, cfg), *data_loaders(data, cfg.trainer))
    return {
        "switches_applied": list(applied) == list(spec["combo"]),
        "windows_per_s": len(data.train) / median(train_s[1:]),
        "val_s_per_epoch": median(val_s[1:]),
        "losses": [float(trainer.callback_metrics[k]) for k in ("train/loss", "val/loss")],
        "threads": torch.get_num_threads(),
        "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
    }


def run_one(spec: dict[str, Any], in_process: bool, timeout: float | None = None) -> dict:
    """``train_once`` in a fresh process (the switches are process-global), or here."""
    if in_process:
        return train_once(spec)
    command = [python(), __file__, "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed ({spec}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def measure(args: Any, spec: dict[str, Any]) -> dict[str, Any]:
    raw = {(m, c): [] for m in args.models for c in COMBOS}
    for rep in range(args.repeats):
        for model in args.models:
            for combo in COMBOS[rep % 4 :] + COMBOS[: rep % 4]:  # rotate the order per repeat
                res = run_one({**spec, "model": model, "combo": combo}, args.quick)
                raw[model, combo].append(res)
                print(f"  {model} {label(combo)}: {res['windows_per_s']:.0f}/s", file=sys.stderr)
    results = {}
    for model in args.models:
        rows = {}
        for combo in COMBOS:
            runs = raw[model, combo]
            rates = [r["windows_per_s"] for r in runs]
            rows[label(combo)] = {
                "windows_per_s": max(rates),
                "median": median(rates),
                "val_s_per_epoch": median([r["val_s_per_epoch"] for r in runs]),
                "losses": runs[0]["losses"],
                "repeatable": all(r["losses"] == runs[0]["losses"] for r in runs),
                "switches_applied": all(r["switches_applied"] for r in runs),
            }
        results[model] = rows
    return results


def threads_study(args: Any, spec: dict[str, Any]) -> list[list[Any]]:
    """The default LSTM with 1 thread, one per core and ``auto_threads``, idle and beside a busy
    process (what a parallel sweep, a second `dvc repro` or a test run does to a training)."""
    cores = os.cpu_count() or 1
    rows = []
    for load in ("idle", "one busy core"):
        busy = subprocess.Popen([python(), "-c", "while True: pass"]) if load != "idle" else None
        try:
            for name, threads in (("1", 1), (f"all cores ({cores})", cores), ("auto", AUTO)):
                runs = []
                for _ in range(args.repeats):
                    run = {**spec, "model": "lstm", "epochs": args.threads_epochs}
                    run.update(combo=(True, True), threads=threads)
                    try:
                        runs.append(run_one(run, False, args.timeout))
                    except subprocess.TimeoutExpired:
                        runs.append(None)
                done = [r for r in runs if r]
                best = max(done, key=lambda r: r["windows_per_s"]) if done else None
                rates = ", ".join(f"{r['windows_per_s']:.0f}" if r else "timeout" for r in runs)
                used = ", ".join(sorted({str(r["threads"]) for r in done})) or "—"
                best_rate = (
                    f"{best['windows_per_s']:.0f}" if best else f"timeout ({args.timeout} s)"
                )
                cpu_s = f"{best['cpu_s']:.0f}" if best else "—"
                losses = ", ".join(sorted({f"{r['losses'][1]:.6f}" for r in done})) or "—"
                rows.append([name, used, load, best_rate, rates, cpu_s, losses])
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    return rows


def to_markdown(results: dict[str, Any], threads: list | None, args: Any) -> str:
    rows, notes = [], []
    for model, settings in results.items():
        ref = settings[label(TORCH_DEFAULT)]
        for name, s in settings.items():
            pairs = zip(s["losses"], ref["losses"], strict=True)
            change = max(abs(a - b) / abs(b) for a, b in pairs)
            rate = f"{s['windows_per_s']:.0f} ({s['median']:.0f})"
            speedup = f"{s['windows_per_s'] / ref['windows_per_s']:.2f}x"
            losses = " / ".join(f"{loss:.6g}" for loss in s["losses"])
            change_text = "none" if change == 0 else f"{change:.1e}"
            rows.append(
                [model, name, rate, speedup, f"{s['val_s_per_epoch']:.3f}", losses, change_text]
            )
        same = len({tuple(s["losses"]) for s in settings.values()}) == 1
        repeatable = all(s["repeatable"] for s in settings.values())
        applied = all(s["switches_applied"] for s in settings.values())
        notes.append(
            f"- {model}: losses {'identical' if same else 'differ'} across the settings, "
            f"{'repeatable' if repeatable else 'NOT repeatable'} within each; "
            f"switches verified in the worker: {'yes' if applied else 'NO'}."
        )
    header = ["model", "setting", "train windows/s, best (median)", "vs torch's default"]
    header += ["val s/epoch", "final train / val loss", "loss change vs torch's default"]
    text = f"Best of {args.repeats} round-robin repeats, {args.epochs} timed epochs.\n\n"
    text += md_table(header, rows) + "\n\n" + "\n".join(notes)
    if threads:
        header = ["torch threads", "used", "other load", "train windows/s, best", "all repeats"]
        text += "\n\nTorch threads (LSTM, rnnlab's default switches):\n\n"
        text += md_table([*header, "CPU-s (best run)", "final val loss"], threads)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = parser_with_common_options(__doc__)
    parser.add_argument("--models", nargs="*", default=["lstm", "gru", "rnn"])
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs (plus 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per setting")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--threads-study", action="store_true", help="1 / all / auto threads, LSTM")
    parser.add_argument("--threads-epochs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300, help="s per threads-study run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(train_once(json.loads(args.worker))))
        return 0
    info = start(args)
    overrides = []
    if args.quick:
        args.models, args.epochs, args.repeats, overrides = ["rnn"], 1, 1, ["experiment=quick"]
    from rnnlab.config import compose, validate
    from rnnlab.paths import RunPaths
    from rnnlab.stages.prepare import run_prepare

    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        run_prepare(validate(compose(overrides)), RunPaths(Path(tmp)))
        spec = {"data_root": tmp, "epochs": args.epochs, "threads": args.threads}
        spec["overrides"] = overrides
        results = measure(args, spec)
        threads = threads_study(args, spec) if args.threads_study else None
    print(machine_line(info) + (" Quick: in one process." if args.quick else ""))
    print(to_markdown(results, threads, args))
    write_json(args.json, {"machine": info, "models": results, "threads_study": threads})
    return 0


if __name__ == "__main__":
    sys.exit(main())
