"""Lightning training overhead: seconds per epoch, Lightning vs a bare PyTorch loop.

Target: an epoch under Lightning takes at most 1.25x the time of a bare PyTorch loop with the
same model, data, batch size, optimizer, loss, clipping and scheduler.

Both sides are set up exactly as ``rnnlab.stages.train.run_train`` does it (``get_task``,
``configure_cpu``, ``task.load_data``, ``seed_everything`` + ``task.build_model``, and the
stage's own ``_loaders``), and both do the same work per epoch: every training batch (forward,
``task.loss``, backward, clip-by-norm, AdamW step), then a no-grad pass over every validation
batch, then a ReduceLROnPlateau step on the validation loss. Lightning runs through
``build_trainer`` (logger False: no MLflow) and ``SequenceModule``. The first epoch is a warm-up
and is excluded; a run's figure is the mean of the remaining epochs. The whole measurement is
repeated (``--repeats``, bare and Lightning interleaved, alternating which goes first); the
verdict uses the best run of each (best-of-N: least disturbed by other work on the machine) and
the median is shown beside it. Final losses of both loops are printed as a check that they
trained the same model the same way.

``--profile`` (automatic when the ratio is above the target) ablates Lightning piece by piece —
callbacks, checkpointing, progress bar, the MLflow logger, a terminal (Rich progress bar) — to
say where any overhead goes.

    python benchmarks/lightning_overhead.py [--epochs 5] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    machine_info,
    machine_line,
    md_table,
    median,
    python,
    quiet_lightning,
    spread,
    write_json,
)

TARGET = 1.25


@dataclass
class Context:
    cfg: Any
    task: Any
    data: Any
    workdir: Path


def setup(epochs: int, overrides: list[str], workdir: Path) -> Context:
    """Default config (+ ``overrides``), ``epochs`` + 1 epochs, data prepared in ``workdir``."""
    import torch

    from rnnlab.config import compose, validate
    from rnnlab.paths import RunPaths
    from rnnlab.stages.prepare import run_prepare
    from rnnlab.tasks import get_task
    from rnnlab.training.trainer import configure_cpu

    cfg = validate(compose([*overrides, f"trainer.max_epochs={epochs + 1}"]))
    paths = RunPaths(workdir)
    run_prepare(cfg, paths)
    task = get_task(cfg.task.name)
    configure_cpu(cfg.trainer)
    data = task.load_data(cfg, paths)
    # Lightning's Trainer(deterministic=True) switches this on process-wide; set it up front so
    # the bare loop runs under the same switch whichever side goes first.
    torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))
    return Context(cfg, task, data, workdir)


def fresh_model_and_loaders(ctx: Context) -> tuple[Any, Any, Any]:
    """What run_train builds, in run_train's order: seed, model, loaders."""
    import pytorch_lightning as pl

    from rnnlab.stages.train import _loaders

    pl.seed_everything(ctx.cfg.seed, workers=True, verbose=False)
    model = ctx.task.build_model(ctx.cfg, ctx.data.meta)
    # The stage's own loader factory; older versions also took the seed.
    extra = (ctx.cfg.seed,) if "seed" in inspect.signature(_loaders).parameters else ()
    train, val = _loaders(ctx.data, ctx.cfg.trainer, *extra)
    return model, train, val


# --------------------------------------------------------------------------------------------
# (a) bare PyTorch


def run_bare(ctx: Context) -> dict[str, Any]:
    import torch

    tc = ctx.cfg.trainer
    model, train, val = fresh_model_and_loaders(ctx)
    opt_cfg, sched_cfg = tc.optimizer, tc.scheduler
    if opt_cfg.name != "adamw" or sched_cfg.name != "plateau":
        raise SystemExit("the bare loop mirrors the default AdamW + plateau settings only")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=sched_cfg.factor, patience=sched_cfg.patience
    )
    clip = tc.gradient_clip_val
    loss_fn = ctx.task.loss
    epoch_seconds, train_batches, val_batches = [], 0, 0
    train_loss = val_loss = float("nan")
    for _ in range(tc.max_epochs):
        started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in train:
            loss = loss_fn(model(batch["x"]), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            n = batch["x"].shape[0]
            total, count = total + float(loss.detach()) * n, count + n
            train_batches += 1
        train_loss = total / count
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in val:
                loss = loss_fn(model(batch["x"]), batch)
                n = batch["x"].shape[0]
                total, count = total + float(loss) * n, count + n
                val_batches += 1
        val_loss = total / count
        scheduler.step(val_loss)
        epoch_seconds.append(time.perf_counter() - started)
    return {
        "epoch_seconds": epoch_seconds,
        "train_batches": train_batches,
        "val_batches": val_batches,
        "train_loss": train_loss,
        "val_loss": val_loss,
    }


# --------------------------------------------------------------------------------------------
# (b) Lightning


def _timer_callback() -> Any:
    import pytorch_lightning as pl

    class EpochTimer(pl.Callback):
        """Epoch k lasts from its on_train_epoch_start to the next one (or on_train_end), so
        validation, checkpointing and every end-of-epoch hook are inside it."""

        def __init__(self) -> None:
            self.starts: list[float] = []
            self.end = 0.0
            self.train_batches = 0
            self.val_batches = 0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, *args: Any) -> None:
            self.train_batches += 1

        def on_validation_batch_end(self, trainer: Any, *args: Any) -> None:
            if not trainer.sanity_checking:
                self.val_batches += 1

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.end = time.perf_counter()

        def epoch_seconds(self) -> list[float]:
            bounds = [*self.starts, self.end]
            return [b - a for a, b in itertools.pairwise(bounds)]

    return EpochTimer()


def _plain_trainer(ctx: Context, ckpt_dir: Path, variant: str) -> Any:
    """A pl.Trainer with build_trainer's settings, minus the features ``variant`` drops."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from rnnlab.training.callbacks import EpochLine, History

    tc, monitor = ctx.cfg.trainer, ctx.cfg.task.monitor
    callbacks: list[Any] = []
    if variant in ("checkpoint", "all_callbacks"):
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode="min")
        )
    if variant in ("early_stopping", "all_callbacks"):
        callbacks.append(
            EarlyStopping(monitor=monitor, mode="min", patience=tc.early_stopping_patience)
        )
    if variant in ("history", "all_callbacks"):
        takes_path = bool(inspect.signature(History).parameters)
        history = History(ckpt_dir / "history.csv") if takes_path else History()
        callbacks += [history, EpochLine(history)]
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
        enable_checkpointing=variant in ("checkpoint", "all_callbacks"),
        enable_progress_bar=variant == "tqdm",
        enable_model_summary=False,
        num_sanity_val_steps=0 if variant != "sanity" else 2,
        log_every_n_steps=1,
        default_root_dir=ckpt_dir,
    )


def run_lightning(ctx: Context, variant: str = "build_trainer") -> dict[str, Any]:
    """One fit. ``build_trainer``: exactly run_train's trainer (logger False). ``mlflow``: the
    same with the MLFlowLogger run_train uses (temp sqlite). Others: see ``_plain_trainer``."""
    from rnnlab.training.module import SequenceModule
    from rnnlab.training.trainer import build_trainer

    model, train, val = fresh_model_and_loaders(ctx)
    timer = _timer_callback()
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
        ckpt_dir = Path(tmp)
        if variant in ("build_trainer", "mlflow"):
            logger: Any = False
            if variant == "mlflow":
                from pytorch_lightning.loggers import MLFlowLogger

                logger = MLFlowLogger(
                    experiment_name="bench", tracking_uri=f"sqlite:///{ckpt_dir / 'mlflow.db'}"
                )
            # build_trainer returns (trainer, checkpoint[, history]) depending on the version.
            trainer = build_trainer(ctx.cfg.trainer, ckpt_dir, logger, ctx.cfg.task.monitor)[0]
        else:
            trainer = _plain_trainer(ctx, ckpt_dir, variant)
        trainer.callbacks.append(timer)
        module = SequenceModule(model, ctx.task.loss, ctx.cfg.trainer)
        started = time.perf_counter()
        trainer.fit(module, train, val)
        fit_seconds = time.perf_counter() - started
    metrics = trainer.callback_metrics
    seconds = timer.epoch_seconds()
    return {
        "epoch_seconds": seconds,
        "fit_seconds": fit_seconds,
        "setup_seconds": fit_seconds - sum(seconds),
        "train_batches": timer.train_batches,
        "val_batches": timer.val_batches,
        "train_loss": float(metrics["train/loss"]),
        "val_loss": float(metrics["val/loss"]),
        "progress_bar": type(trainer.progress_bar_callback).__name__
        if trainer.progress_bar_callback
        else "none",
    }


def run_lightning_quiet(ctx: Context, variant: str) -> dict[str, Any]:
    """Lightning with stdout captured: not a terminal, as in `dvc repro` from CI or a log."""
    with contextlib.redirect_stdout(io.StringIO()):
        return run_lightning(ctx, variant)


def run_lightning_in_terminal(args: argparse.Namespace) -> dict[str, Any]:
    """build_trainer as an interactive user gets it (`dvc repro` in a terminal: RichProgressBar
    and model summary): a child process whose stdout is a pseudo-terminal."""
    import pty

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [python(), __file__, "--worker-tty", str(out), "--epochs", str(args.epochs)]
        cmd += [arg for o in args.override for arg in ("--override", o)]
        master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        tail = b""
        while True:  # drain the terminal so the child never blocks on a full pty buffer
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            tail = (tail + chunk)[-4000:]
        os.close(master)
        if proc.wait() != 0 or not out.exists():
            raise RuntimeError(f"terminal run failed:\n{tail.decode(errors='replace')}")
        return json.loads(out.read_text())


def mean_after_warmup(seconds: list[float]) -> float:
    rest = seconds[1:]
    return sum(rest) / len(rest)


# --------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    quiet_lightning()
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        ctx = setup(args.epochs, args.override, Path(tmp))
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "lightning": []}
        for i in range(args.repeats):
            # Interleaved, alternating which goes first, so background load hits both alike.
            order = ("bare", "lightning") if i % 2 == 0 else ("lightning", "bare")
            for name in order:
                res = run_bare(ctx) if name == "bare" else run_lightning_quiet(ctx, "build_trainer")
                runs[name].append(res)
                print(
                    f"  repeat {i + 1}/{args.repeats} {name:9s} "
                    f"{mean_after_warmup(res['epoch_seconds']):.3f} s/epoch",
                    file=sys.stderr,
                    flush=True,
                )
        bare_reps = [mean_after_warmup(r["epoch_seconds"]) for r in runs["bare"]]
        light_reps = [mean_after_warmup(r["epoch_seconds"]) for r in runs["lightning"]]
        bare, light = min(bare_reps), min(light_reps)
        ratio = light / bare
        result: dict[str, Any] = {
            "machine": info,
            "epochs_timed": args.epochs,
            "repeats": args.repeats,
            "train_windows": len(ctx.data.train),
            "val_windows": len(ctx.data.val),
            "batch_size": ctx.cfg.trainer.batch_size,
            "runs": runs,
            "bare_s_per_epoch": bare,
            "lightning_s_per_epoch": light,
            "ratio": ratio,
            "bare_s_per_epoch_median": median(bare_reps),
            "lightning_s_per_epoch_median": median(light_reps),
            "ratio_median": median(light_reps) / median(bare_reps),
            "target": TARGET,
            "met": ratio <= TARGET,
            "lightning_setup_s": min(r["setup_seconds"] for r in runs["lightning"]),
        }
        if args.profile or ratio > TARGET:
            result["profile"] = profile(ctx, args, bare, light)
    return result


PROFILE_VARIANTS = {
    "minimal": "pl.Trainer, no callbacks/checkpointing/progress bar/sanity check",
    "sanity": "minimal + sanity check (2 val batches before fit)",
    "checkpoint": "minimal + ModelCheckpoint (best, every improving epoch)",
    "early_stopping": "minimal + EarlyStopping",
    "history": "minimal + History + EpochLine (rnnlab callbacks)",
    "all_callbacks": "minimal + all four callbacks (= build_trainer, non-terminal)",
    "tqdm": "minimal + Lightning's default TQDM progress bar",
    "build_trainer": "build_trainer as run_train calls it, stdout not a terminal",
    "mlflow": "build_trainer + MLFlowLogger (temp sqlite), as `dvc repro` trains",
    "terminal": "build_trainer in a pseudo-terminal (RichProgressBar + model summary)",
}


def profile(ctx: Context, args: argparse.Namespace, bare: float, light: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in PROFILE_VARIANTS:
        per_epoch, setup_s, bars = [], [], ""
        for _ in range(args.profile_repeats):
            if variant == "terminal":
                res = run_lightning_in_terminal(args)
            else:
                res = run_lightning_quiet(ctx, variant)
            per_epoch.append(mean_after_warmup(res["epoch_seconds"]))
            setup_s.append(res["setup_seconds"])
            bars = res["progress_bar"]
        out[variant] = {
            "s_per_epoch": min(per_epoch),
            "repeats": per_epoch,
            "ratio": min(per_epoch) / bare,
            "vs_build_trainer": min(per_epoch) / light,
            "setup_s": min(setup_s),
            "progress_bar": bars,
        }
        print(
            f"  profile {variant:15s} {min(per_epoch):.3f} s/epoch (best of {len(per_epoch)})",
            file=sys.stderr,
            flush=True,
        )
    return out


def to_markdown(res: dict[str, Any]) -> str:
    runs = res["runs"]
    b, lt = runs["bare"][0], runs["lightning"][0]
    bare_reps = [mean_after_warmup(r["epoch_seconds"]) for r in runs["bare"]]
    light_reps = [mean_after_warmup(r["epoch_seconds"]) for r in runs["lightning"]]
    n, reps = res["epochs_timed"], res["repeats"]
    lines = [
        "### Lightning training overhead",
        "",
        machine_line(res["machine"]),
        f"Default config (2-layer LSTM, hidden 64), {res['train_windows']} train / "
        f"{res['val_windows']} val windows, batch size {res['batch_size']}; mean of {n} timed "
        f"epochs after 1 warm-up epoch, best and median of {reps} interleaved repeats.",
        "",
        md_table(
            [
                "loop",
                f"s / epoch (best of {reps})",
                "median",
                "all repeats",
                "train+val batches / run",
                "final train loss",
                "final val loss",
            ],
            [
                [
                    "bare PyTorch",
                    f"{res['bare_s_per_epoch']:.3f}",
                    f"{res['bare_s_per_epoch_median']:.3f}",
                    spread(bare_reps),
                    f"{b['train_batches']}+{b['val_batches']}",
                    f"{b['train_loss']:.6f}",
                    f"{b['val_loss']:.6f}",
                ],
                [
                    "Lightning (build_trainer, logger=False)",
                    f"{res['lightning_s_per_epoch']:.3f}",
                    f"{res['lightning_s_per_epoch_median']:.3f}",
                    spread(light_reps),
                    f"{lt['train_batches']}+{lt['val_batches']}",
                    f"{lt['train_loss']:.6f}",
                    f"{lt['val_loss']:.6f}",
                ],
            ],
        ),
        "",
        f"Ratio Lightning / bare: **{res['ratio']:.3f}** best-of-{reps} "
        f"({res['ratio_median']:.3f} on medians); target ≤ {res['target']} — "
        f"**{'met' if res['met'] else 'not met'}**. One-off Lightning fit setup outside the "
        f"epochs (sanity check, hooks, teardown): {res['lightning_setup_s']:.2f} s.",
    ]
    if "profile" in res:
        rows = [
            [
                name,
                PROFILE_VARIANTS[name],
                p["progress_bar"],
                f"{p['s_per_epoch']:.3f}",
                f"{p['ratio']:.3f}",
                f"{p['setup_s']:.2f}",
            ]
            for name, p in res["profile"].items()
        ]
        lines += [
            "",
            "Profile (best run of each variant; ratio against the bare loop's best):",
            "",
            md_table(
                ["variant", "what", "progress bar", "s / epoch", "ratio vs bare", "fit setup s"],
                rows,
            ),
        ]
    return "\n".join(lines)


def worker_tty(args: argparse.Namespace) -> None:
    quiet_lightning()
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        ctx = setup(args.epochs, args.override, Path(tmp))
        res = run_lightning(ctx, "build_trainer")
    res["stdout_isatty"] = sys.stdout.isatty()
    Path(args.worker_tty).write_text(json.dumps(res))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (plus 1 warm-up)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved repeats (best-of and median)"
    )
    parser.add_argument(
        "--profile-repeats", type=int, default=3, help="repeats per profile variant (best-of)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="ablate Lightning features (auto if over target)"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override, e.g. --override model=gru (repeatable)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--worker-tty", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_tty:
        worker_tty(args)
        return 0
    res = measure(args)
    write_json(args.json, res)
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
