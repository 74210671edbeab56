"""Training speed on the CPU: Lightning's overhead, the CPU numerics switches, torch threads.

All three train through rnnlab's own path (``configure_cpu``, ``task.load_data``,
``seed_everything`` + ``task.build_model``, the train stage's ``data_loaders``,
``task.lightning_module`` and ``build_trainer``, logger off, stdout not a terminal).

``--overhead``: seconds per epoch under Lightning against a bare PyTorch loop doing the same
work (forward, ``task.loss``, backward, clipping, AdamW, a no-grad validation pass, a plateau
step); epoch 1 warms up and the last (end-of-fit work) is not timed; bare and Lightning runs
alternate. Target: at most 1.25x. ``--profile`` (automatic above it) ablates Lightning's parts.
``--switches``: training windows per second for the four combinations of
``trainer.flush_denormal`` x ``trainer.mkldnn``, each run in a fresh process (both are
process-global), round-robin. ``--threads-study``: the default LSTM with 1 thread, one per core
and an automatic choice, idle and beside one busy core. Without a part: overhead and switches.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as bench

TARGET = 1.25
PROFILE = {
    "bare": "bare PyTorch loop (same rounds)",
    "minimal": "`pl.Trainer` alone (no callbacks, checkpointing, progress bar, sanity check)",
    "sanity": "+ sanity check",
    "checkpoint": "+ `ModelCheckpoint` (writes `best.ckpt` on every improving epoch)",
    "early_stopping": "+ `EarlyStopping`",
    "history": "+ `History` + `EpochLine`",
    "grad_flow": "+ `GradientFlow` probe",
    "build_trainer": "`build_trainer` as `run_train` uses it (stdout not a terminal)",
    "mlflow": "`build_trainer` + `MLFlowLogger` (temp sqlite), as `dvc repro` trains",
}
COMBOS = list(itertools.product((False, True), (False, True)))  # (flush_denormal, mkldnn)
TORCH_DEFAULT = (False, True)  # what torch does when nobody touches the switches
AUTO = -1  # threads: cores minus the 1-minute load average, at least 1 (a load-aware default)


def load(overrides: list[str], root: str) -> tuple[Any, Any, Any]:
    """Config, task and prepared data as ``run_train`` has them; CPU settings applied."""
    from rnnlab.config import compose, validate
    from rnnlab.lightning.trainer import configure_cpu
    from rnnlab.paths import RunPaths
    from rnnlab.tasks import get_task

    cfg = validate(compose(overrides))
    task = get_task(cfg.task.name)
    configure_cpu(cfg.trainer)
    return cfg, task, task.load_data(cfg, RunPaths(Path(root)))


def fresh_model(cfg: Any, task: Any, data: Any) -> tuple[Any, Any, Any]:
    import pytorch_lightning as pl

    from rnnlab.stages.train import data_loaders

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return task.build_model(cfg, data.meta), *data_loaders(data, cfg.trainer)


def lightning_fit(cfg: Any, task: Any, data: Any, variant: str = "build_trainer") -> dict:
    """One fit, stdout captured (not a terminal, as under DVC or a log), with the start of every
    epoch and the seconds of its training and validation parts."""
    import pytorch_lightning as pl

    from rnnlab.lightning.trainer import build_trainer

    starts: list[float] = []
    train_s: list[float] = []
    val_s: list[float] = []

    class Timer(pl.Callback):
        def on_train_epoch_start(self, *_: Any) -> None:
            starts.append(time.perf_counter())

        def on_validation_epoch_start(self, trainer: Any, *_: Any) -> None:
            if not trainer.sanity_checking:
                self.started = time.perf_counter()
                train_s.append(self.started - starts[-1])

        def on_validation_epoch_end(self, trainer: Any, *_: Any) -> None:
            if not trainer.sanity_checking:
                val_s.append(time.perf_counter() - self.started)

    model, train, val = fresh_model(cfg, task, data)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        if variant in ("build_trainer", "mlflow"):
            logger: Any = False
            if variant == "mlflow":
                from pytorch_lightning.loggers import MLFlowLogger

                logger = MLFlowLogger("bench", tracking_uri=f"sqlite:///{tmp}/mlflow.db")
            trainer, _ = build_trainer(cfg.trainer, Path(tmp), logger, cfg.task.monitor)
        else:
            trainer = plain_trainer(cfg, Path(tmp), variant)
        trainer.callbacks.append(Timer())
        started = time.perf_counter()
        trainer.fit(task.lightning_module(model, cfg), train, val)
    losses = [float(trainer.callback_metrics[k]) for k in ("train/loss", "val/loss")]
    fit_s = time.perf_counter() - started
    return dict(epoch_starts=starts, train_s=train_s, val_s=val_s, fit_s=fit_s, losses=losses)


def plain_trainer(cfg: Any, ckpt_dir: Path, variant: str) -> Any:
    """A pl.Trainer with build_trainer's settings and only the feature ``variant`` adds."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from rnnlab.lightning.callbacks import EpochLine, History
    from rnnlab.lightning.grad_flow import GradientFlow

    tc, monitor = cfg.trainer, cfg.task.monitor
    history = History(ckpt_dir / "history.csv")
    callbacks = {
        "checkpoint": [ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor)],
        "early_stopping": [EarlyStopping(monitor=monitor, patience=tc.early_stopping_patience)],
        "grad_flow": [GradientFlow(ckpt_dir, tc.grad_flow_batches)],
        "history": [history, EpochLine(history)],
    }.get(variant, [])
    return pl.Trainer(
        max_epochs=tc.max_epochs,
        accelerator=tc.accelerator,
        devices=tc.devices,
        strategy=tc.strategy,
        precision=tc.precision,
        gradient_clip_val=tc.gradient_clip_val,
        gradient_clip_algorithm=tc.gradient_clip_algorithm,
        deterministic=tc.deterministic,
        limit_train_batches=tc.limit_train_batches,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=variant == "checkpoint",
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=2 if variant == "sanity" else 0,
        log_every_n_steps=1,
        default_root_dir=ckpt_dir,
    )


def bare_fit(cfg: Any, task: Any, data: Any) -> dict[str, Any]:
    """The same training as ``lightning_fit`` in a plain PyTorch loop."""
    import torch

    tc = cfg.trainer
    if tc.optimizer.name != "adamw" or tc.scheduler.name != "plateau":
        raise SystemExit("the bare loop mirrors the default AdamW + plateau settings only")
    model, train, val = fresh_model(cfg, task, data)
    opt = torch.optim.AdamW(
        model.parameters(), lr=tc.optimizer.lr, weight_decay=tc.optimizer.weight_decay
    )
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=tc.scheduler.factor, patience=tc.scheduler.patience
    )

    def epoch(loader: Any, training: bool) -> float:
        model.train(training)
        total = count = 0.0
        with torch.set_grad_enabled(training):
            for batch in loader:  # fed to the model as the LightningModule does
                args = (batch["x"], batch["lengths"]) if "lengths" in batch else (batch["x"],)
                loss = task.loss(model(*args), batch)
                if training:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if tc.gradient_clip_val is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.gradient_clip_val)
                    opt.step()
                total += float(loss.detach()) * len(batch["x"])
                count += len(batch["x"])
        return total / count

    starts = []
    for _ in range(tc.max_epochs):
        starts.append(time.perf_counter())
        losses = [epoch(train, True), epoch(val, False)]
        sched.step(losses[1])
    return {"epoch_starts": starts, "fit_s": time.perf_counter() - starts[0], "losses": losses}


def per_epoch(run: dict[str, Any], epochs: int) -> float:
    """Mean seconds of the timed epochs: after the warm-up, start to next start."""
    spans = [b - a for a, b in itertools.pairwise(run["epoch_starts"])]
    return sum(spans[1 : epochs + 1]) / epochs


def overhead(args: Any, spec: dict[str, Any]) -> tuple[str, dict]:
    import torch

    # 1 warm-up + ``epochs`` timed + 1 trailing epoch (see the module docstring).
    epochs, repeats = args.epochs or 5, args.repeats or 5
    cfg, task, data = load(
        [*spec["overrides"], f"trainer.max_epochs={epochs + 2}"], spec["data_root"]
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    # Lightning's Trainer(deterministic=True) sets this process-wide: same for both loops.
    torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))

    def run(variant: str) -> dict:
        if variant == "bare":
            return bare_fit(cfg, task, data)
        return lightning_fit(cfg, task, data, variant)

    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "build_trainer": []}
    for i in range(repeats):
        # Interleaved, alternating which goes first, so background load hits both alike.
        for name in list(runs) if i % 2 == 0 else list(runs)[::-1]:
            runs[name].append(run(name))
            print(f"  {name} {per_epoch(runs[name][-1], epochs):.3f} s/epoch", file=sys.stderr)
    seconds = {k: [per_epoch(r, epochs) for r in v] for k, v in runs.items()}
    best = {k: min(v) for k, v in seconds.items()}
    ratio = best["build_trainer"] / best["bare"]
    med = {k: bench.median(v) for k, v in seconds.items()}
    rows = []
    for key, loop in (("bare", "bare PyTorch"), ("build_trainer", "Lightning (`build_trainer`)")):
        fit = min(r["fit_s"] for r in runs[key])
        losses = " / ".join(f"{loss:.6f}" for loss in runs[key][-1]["losses"])
        rows.append([loop, f"{best[key]:.3f}", f"{med[key]:.3f}", f"{fit:.2f}", losses])
    header = [f"loop ({repeats} runs)", "s / epoch, best", "median", "whole fit s, best"]
    text = [
        f"Lightning overhead: {len(data.train)} train / {len(data.val)} val windows, batch size "
        f"{cfg.trainer.batch_size}, {torch.get_num_threads()} torch threads; mean of {epochs} "
        "timed epochs after 1 warm-up.",
        bench.md_table([*header, "final train / val loss"], rows),
        f"Lightning / bare per epoch: **{ratio:.3f}x** on the best runs "
        f"({med['build_trainer'] / med['bare']:.3f}x on the medians); "
        f"target ≤ {TARGET}x: {bench.verdict(ratio <= TARGET)}.",
    ]
    result = {"runs": runs, "best": best, "median": med, "ratio": ratio}
    if args.profile or ratio > TARGET:
        # Every variant once per round, round-robin, so a burst of load does not hit one alone.
        profile: dict[str, list[float]] = {v: [] for v in PROFILE}
        for _ in range(args.profile_repeats):
            for variant in PROFILE:
                profile[variant].append(per_epoch(run(variant), epochs))
                print(f"  profile {variant} {profile[variant][-1]:.3f} s/epoch", file=sys.stderr)
        result["profile"] = {v: min(s) for v, s in profile.items()}
        ref = result["profile"]["bare"]
        rows = [[PROFILE[v], f"{s:.3f}", f"{s / ref:.2f}"] for v, s in result["profile"].items()]
        text.append(f"Profile, best of {args.profile_repeats} rounds:")
        text.append(bench.md_table(["variant", "s / epoch", "ratio vs bare"], rows))
    return "\n\n".join(text), result


def switches_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One training with the switches of ``spec['combo']`` and ``spec['threads']``, timed."""
    bench.quiet_lightning()
    import torch

    flush, mkldnn = spec["combo"]
    overrides = [*spec["overrides"], f"model={spec['model']}", f"trainer.mkldnn={mkldnn}"]
    overrides += [f"trainer.flush_denormal={flush}", f"trainer.max_epochs={spec['epochs'] + 1}"]
    cfg, task, data = load([o.lower() for o in overrides], spec["data_root"])
    if spec["threads"]:
        threads = spec["threads"]
        auto = max(1, (os.cpu_count() or 1) - round(os.getloadavg()[0]))
        torch.set_num_threads(auto if threads == AUTO else threads)
    # The switches took effect: oneDNN's flag, and a denormal operand reads 0 when flushed.
    applied = [float(torch.tensor([1e-39]) * 1.0) == 0.0, bool(torch.backends.mkldnn.enabled)]
    fit = lightning_fit(cfg, task, data)
    return {
        "switches_applied": applied == list(spec["combo"]),
        "windows_per_s": len(data.train) / bench.median(fit["train_s"][1:]),
        "val_s_per_epoch": bench.median(fit["val_s"][1:]),
        "losses": fit["losses"],
        "threads": torch.get_num_threads(),
    }


def label(combo: tuple[bool, bool]) -> str:
    return f"flush_denormal={str(combo[0]).lower()}, mkldnn={str(combo[1]).lower()}"


def switches(args: Any, spec: dict[str, Any]) -> tuple[str, dict]:
    repeats, spec = args.repeats or 3, {**spec, "epochs": args.epochs or 4}
    raw: dict[tuple, list[dict]] = {(m, c): [] for m in args.models for c in COMBOS}
    for rep in range(repeats):
        for model in args.models:
            for combo in COMBOS[rep % 4 :] + COMBOS[: rep % 4]:  # rotate the order per repeat
                run = {**spec, "model": model, "combo": combo}
                res = bench.fresh_process(__file__, run)
                raw[model, combo].append(res)
                print(f"  {model} {label(combo)}: {res['windows_per_s']:.0f}/s", file=sys.stderr)
    rows, notes, results = [], [], {}
    for model in args.models:
        ref = raw[model, TORCH_DEFAULT]
        for combo in COMBOS:
            runs = raw[model, combo]
            rates = [r["windows_per_s"] for r in runs]
            pairs = zip(runs[0]["losses"], ref[0]["losses"], strict=True)
            change = max(abs(a - b) / abs(b) for a, b in pairs)
            rows.append(
                [
                    model,
                    label(combo),
                    f"{max(rates):.0f} ({bench.median(rates):.0f})",
                    f"{max(rates) / max(r['windows_per_s'] for r in ref):.2f}x",
                    f"{bench.median([r['val_s_per_epoch'] for r in runs]):.3f}",
                    " / ".join(f"{loss:.6g}" for loss in runs[0]["losses"]),
                    "none" if change == 0 else f"{change:.1e}",
                ]
            )
        firsts = [raw[model, c][0]["losses"] for c in COMBOS]
        same = all(losses == firsts[0] for losses in firsts)
        repeatable = all(
            r["losses"] == raw[model, c][0]["losses"] for c in COMBOS for r in raw[model, c]
        )
        applied = all(r["switches_applied"] for c in COMBOS for r in raw[model, c])
        notes.append(
            f"- {model}: losses {'identical' if same else 'differ'} across the settings, "
            f"{'repeatable' if repeatable else 'NOT repeatable'} within each; "
            f"switches verified in the worker: {'yes' if applied else 'NO'}."
        )
        results[model] = {label(c): raw[model, c] for c in COMBOS}
    header = ["model", "setting", "train windows/s, best (median)", "vs torch's default"]
    header += ["val s/epoch", "final train / val loss", "loss change vs torch's default"]
    text = f"CPU switches: best of {repeats} round-robin repeats, {spec['epochs']} timed epochs."
    return f"{text}\n\n{bench.md_table(header, rows)}\n\n" + "\n".join(notes), results


def threads_study(args: Any, spec: dict[str, Any]) -> tuple[str, list]:
    """The default LSTM with 1 thread, one per core and ``AUTO``, idle and beside a busy
    process (what a parallel sweep, a second `dvc repro` or a test run does to a training)."""
    cores, rows = os.cpu_count() or 1, []
    for load in ("idle", "one busy core"):
        busy = (
            subprocess.Popen([bench.python(), "-c", "while True: pass"]) if load != "idle" else None
        )
        try:
            for name, threads in (("1", 1), (f"all cores ({cores})", cores), ("auto", AUTO)):
                runs = []
                for _ in range(args.repeats or 3):
                    run = {**spec, "model": "lstm", "epochs": args.threads_epochs}
                    run.update(combo=(True, True), threads=threads)
                    try:
                        runs.append(bench.fresh_process(__file__, run, timeout=args.timeout))
                    except subprocess.TimeoutExpired:
                        runs.append(None)
                done = [r for r in runs if r]
                best = max(done, key=lambda r: r["windows_per_s"]) if done else None
                rows.append(
                    [
                        name,
                        ", ".join(sorted({str(r["threads"]) for r in done})) or "—",
                        load,
                        f"{best['windows_per_s']:.0f}" if best else f"timeout ({args.timeout} s)",
                        ", ".join(f"{r['windows_per_s']:.0f}" if r else "timeout" for r in runs),
                        f"{best['cpu_s']:.0f}" if best else "—",
                        ", ".join(sorted({f"{r['losses'][1]:.6f}" for r in done})) or "—",
                    ]
                )
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    header = ["torch threads", "used", "other load", "train windows/s, best", "all repeats"]
    table = bench.md_table([*header, "CPU-s (best run)", "final val loss"], rows)
    return f"Torch threads (LSTM, rnnlab's default switches):\n\n{table}", rows


def main() -> None:
    parser = bench.options(__doc__)
    parser.add_argument("--overhead", action="store_true", help="Lightning against a bare loop")
    parser.add_argument("--switches", action="store_true", help="flush_denormal x mkldnn")
    parser.add_argument("--threads-study", action="store_true", help="1 / all / auto threads")
    parser.add_argument("--epochs", type=int, help="timed epochs (overhead 5, switches 4)")
    parser.add_argument("--repeats", type=int, help="repeats (overhead 5, the others 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--profile", action="store_true", help="ablate Lightning's features")
    parser.add_argument("--profile-repeats", type=int, default=3, help="rounds of the profile")
    parser.add_argument("--models", nargs="+", default=["lstm", "gru", "rnn"], help="switches")
    parser.add_argument("--threads-epochs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300, help="s per threads-study run")
    args = parser.parse_args()
    if args.worker:
        return bench.write_json(args.json, switches_worker(args.worker))
    if not (args.overhead or args.switches or args.threads_study):
        args.overhead = args.switches = True
    info = bench.start(args)
    base = []
    if args.quick:  # a small model, one timed epoch, one round of everything
        args.models, args.epochs, args.repeats, base = ["rnn"], 1, 1, ["experiment=quick"]
        args.profile_repeats = 1
    bench.quiet_lightning()
    from rnnlab.config import compose, validate
    from rnnlab.paths import RunPaths
    from rnnlab.stages.prepare import run_prepare

    texts, payload = [], {}
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        run_prepare(validate(compose(base)), RunPaths(Path(tmp)))
        spec = {"data_root": tmp, "threads": args.threads, "overrides": base}
        parts = {"overhead": overhead, "switches": switches, "threads_study": threads_study}
        for name, part in parts.items():
            if getattr(args, name):
                text, payload[name] = part(args, spec)
                texts.append(text)
    bench.finish(info, "\n\n".join(texts), args.json, payload)


if __name__ == "__main__":
    main()
