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
    add_nice_option,
    apply_nice,
    machine_info,
    machine_line,
    md_table,
    median,
    python,
    quiet_lightning,
    sigterm_exits,
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


def setup(epochs: int, overrides: list[str], workdir: Path, threads: int = 0) -> Context:
    """Default config (+ ``overrides``), ``epochs`` + 1 epochs, data prepared in ``workdir``."""
    import torch

    from rnnlab.config import compose, validate
    from rnnlab.lightning.trainer import configure_cpu
    from rnnlab.paths import RunPaths
    from rnnlab.stages.prepare import run_prepare
    from rnnlab.tasks import get_task

    # 1 warm-up + ``epochs`` timed + 1 trailing epoch: Lightning's epoch k is timed from its start
    # to the start of epoch k + 1, so the last epoch (which also carries one-off end-of-fit work
    # such as the gradient-flow probe) is run by both loops but timed by neither.
    cfg = validate(compose([*overrides, f"trainer.max_epochs={epochs + 2}"]))
    paths = RunPaths(workdir)
    run_prepare(cfg, paths)
    task = get_task(cfg.task.name)
    configure_cpu(cfg.trainer)
    if threads:
        torch.set_num_threads(threads)
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
    train, val = _loaders(ctx.data, ctx.cfg.trainer)  # the stage's own loader factory
    return model, train, val


# --------------------------------------------------------------------------------------------
# (a) bare PyTorch


def predict(model: Any, batch: dict[str, Any]) -> Any:
    """What SequenceModule feeds the model: x, plus lengths when the batch has them."""
    return model(batch["x"], batch["lengths"]) if "lengths" in batch else model(batch["x"])


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
    fit_started = time.perf_counter()
    for _ in range(tc.max_epochs):
        started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in train:
            loss = loss_fn(predict(model, batch), batch)
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
                loss = loss_fn(predict(model, batch), batch)
                n = batch["x"].shape[0]
                total, count = total + float(loss) * n, count + n
                val_batches += 1
        val_loss = total / count
        scheduler.step(val_loss)
        epoch_seconds.append(time.perf_counter() - started)
    return {
        "epoch_seconds": epoch_seconds,
        "fit_seconds": time.perf_counter() - fit_started,
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
        """Epoch k lasts from its on_train_epoch_start to the next epoch's, so validation,
        checkpointing, the scheduler and every end-of-epoch hook are inside it."""

        def __init__(self) -> None:
            self.starts: list[float] = []
            self.train_batches = 0
            self.val_batches = 0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, *args: Any) -> None:
            self.train_batches += 1

        def on_validation_batch_end(self, trainer: Any, *args: Any) -> None:
            if not trainer.sanity_checking:
                self.val_batches += 1

        def epoch_seconds(self) -> list[float]:
            return [b - a for a, b in itertools.pairwise(self.starts)]

    return EpochTimer()


def _plain_trainer(ctx: Context, ckpt_dir: Path, variant: str) -> Any:
    """A pl.Trainer with build_trainer's settings, minus the features ``variant`` drops."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from rnnlab.lightning.callbacks import EpochLine, History
    from rnnlab.lightning.grad_flow import GradientFlow

    tc, monitor = ctx.cfg.trainer, ctx.cfg.task.monitor
    callbacks: list[Any] = []
    if variant == "checkpoint":
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode="min")
        )
    if variant == "early_stopping":
        callbacks.append(
            EarlyStopping(monitor=monitor, mode="min", patience=tc.early_stopping_patience)
        )
    if variant == "grad_flow":
        callbacks.append(GradientFlow(ckpt_dir, tc.grad_flow_batches))
    if variant == "history":
        history = History(ckpt_dir / "history.csv")
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
        enable_checkpointing=variant == "checkpoint",
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0 if variant != "sanity" else 2,
        log_every_n_steps=1,
        default_root_dir=ckpt_dir,
    )


def run_lightning(ctx: Context, variant: str = "build_trainer") -> dict[str, Any]:
    """One fit. ``build_trainer``: exactly run_train's trainer (logger False). ``mlflow``: the
    same with the MLFlowLogger run_train uses (temp sqlite). Others: see ``_plain_trainer``."""
    from rnnlab.lightning.module import SequenceModule
    from rnnlab.lightning.trainer import build_trainer

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
            trainer, _ = build_trainer(ctx.cfg.trainer, ckpt_dir, logger, ctx.cfg.task.monitor)
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
        cmd += ["--threads", str(args.threads)]
        master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        tail = b""
        try:
            while True:  # drain the terminal so the child never blocks on a full pty buffer
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                tail = (tail + chunk)[-4000:]
        except BaseException:
            proc.kill()
            raise
        finally:
            os.close(master)
        if proc.wait() != 0 or not out.exists():
            raise RuntimeError(f"terminal run failed:\n{tail.decode(errors='replace')}")
        return json.loads(out.read_text())


def mean_after_warmup(seconds: list[float], epochs: int) -> float:
    """Mean of the ``epochs`` timed epochs: skip the warm-up (and, for the bare loop, the
    trailing epoch that Lightning's start-to-start timing cannot see)."""
    timed = seconds[1 : epochs + 1]
    return sum(timed) / len(timed)


# --------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    quiet_lightning()
    info = machine_info()
    n = args.epochs
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        ctx = setup(n, args.override, Path(tmp), args.threads)
        import torch

        info["torch_threads"] = torch.get_num_threads()
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "lightning": []}
        for i in range(args.repeats):
            # Interleaved, alternating which goes first, so background load hits both alike.
            order = ("bare", "lightning") if i % 2 == 0 else ("lightning", "bare")
            for name in order:
                res = run_bare(ctx) if name == "bare" else run_lightning_quiet(ctx, "build_trainer")
                runs[name].append(res)
                print(
                    f"  repeat {i + 1}/{args.repeats} {name:9s} "
                    f"{mean_after_warmup(res['epoch_seconds'], n):.3f} s/epoch, "
                    f"fit {res['fit_seconds']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
        bare_reps = [mean_after_warmup(r["epoch_seconds"], n) for r in runs["bare"]]
        light_reps = [mean_after_warmup(r["epoch_seconds"], n) for r in runs["lightning"]]
        bare, light = min(bare_reps), min(light_reps)
        ratio = light / bare
        result: dict[str, Any] = {
            "machine": info,
            "epochs_timed": n,
            "epochs_run": ctx.cfg.trainer.max_epochs,
            "repeats": args.repeats,
            "profile_repeats": args.profile_repeats,
            "overrides": args.override,
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
            "bare_fit_s": min(r["fit_seconds"] for r in runs["bare"]),
            "lightning_fit_s": min(r["fit_seconds"] for r in runs["lightning"]),
            "target": TARGET,
            "met": ratio <= TARGET,
            "load_avg_1m_end": round(os.getloadavg()[0], 2),
        }
        if args.profile or ratio > TARGET:
            result["profile"] = profile(ctx, args)
    return result


PROFILE_VARIANTS = {
    "bare": "the bare PyTorch loop again, in the same rounds",
    "minimal": "pl.Trainer, no callbacks/checkpointing/progress bar/sanity check",
    "sanity": "minimal + sanity check (2 val batches before fit)",
    "checkpoint": "minimal + ModelCheckpoint (save best on every improving epoch)",
    "early_stopping": "minimal + EarlyStopping",
    "history": "minimal + History + EpochLine (rnnlab callbacks)",
    "grad_flow": "minimal + GradientFlow probe (rnnlab; epoch 0 and end of fit)",
    "build_trainer": "build_trainer as run_train calls it, stdout not a terminal",
    "mlflow": "build_trainer + MLFlowLogger (temp sqlite), as `dvc repro` trains",
    "terminal": "build_trainer in a pseudo-terminal (RichProgressBar + model summary)",
}


def profile(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    """Every variant once per round, round-robin, so a burst of background load does not land
    on all the repeats of one variant; the bare loop runs in every round too."""
    variants = [v for v in PROFILE_VARIANTS if v != "bare"]
    per_epoch: dict[str, list[float]] = {v: [] for v in ["bare", *variants]}
    fit_s: dict[str, list[float]] = {v: [] for v in ["bare", *variants]}
    bars: dict[str, str] = {"bare": "none"}
    for rep in range(args.profile_repeats):
        for variant in ["bare", *variants]:
            if variant == "bare":
                res = run_bare(ctx)
            elif variant == "terminal":
                res = run_lightning_in_terminal(args)
            else:
                res = run_lightning_quiet(ctx, variant)
            per_epoch[variant].append(mean_after_warmup(res["epoch_seconds"], args.epochs))
            fit_s[variant].append(res["fit_seconds"])
            bars[variant] = res.get("progress_bar", "none")
            print(
                f"  profile round {rep + 1}/{args.profile_repeats} {variant:15s} "
                f"{per_epoch[variant][-1]:.3f} s/epoch, fit {fit_s[variant][-1]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    base = min(per_epoch["bare"])
    return {
        v: {
            "s_per_epoch": min(per_epoch[v]),
            "repeats": per_epoch[v],
            "ratio": min(per_epoch[v]) / base,
            "fit_s": min(fit_s[v]),
            "progress_bar": bars[v],
        }
        for v in per_epoch
    }


def to_markdown(res: dict[str, Any]) -> str:
    runs = res["runs"]
    n, reps = res["epochs_timed"], res["repeats"]
    b, lt = runs["bare"][0], runs["lightning"][0]
    bare_reps = [mean_after_warmup(r["epoch_seconds"], n) for r in runs["bare"]]
    light_reps = [mean_after_warmup(r["epoch_seconds"], n) for r in runs["lightning"]]
    overrides = " ".join(res.get("overrides") or []) or "none"
    lines = [
        "### Lightning training overhead",
        "",
        machine_line(res["machine"]) + f" Load at the end: {res['load_avg_1m_end']}.",
        f"Default config (overrides: {overrides}), {res['train_windows']} train / "
        f"{res['val_windows']} val windows, batch size {res['batch_size']}. Each run trains "
        f"{res['epochs_run']} epochs; the figure is the mean of {n} epochs after 1 warm-up "
        f"epoch (the last epoch, which carries end-of-fit work, is not timed); best and median "
        f"of {reps} interleaved repeats.",
        "",
        md_table(
            [
                "loop",
                f"s / epoch (best of {reps})",
                "median",
                "all repeats",
                f"whole fit s ({res['epochs_run']} epochs, best)",
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
                    f"{res['bare_fit_s']:.2f}",
                    f"{b['train_batches']}+{b['val_batches']}",
                    f"{b['train_loss']:.6f}",
                    f"{b['val_loss']:.6f}",
                ],
                [
                    "Lightning (build_trainer, logger=False)",
                    f"{res['lightning_s_per_epoch']:.3f}",
                    f"{res['lightning_s_per_epoch_median']:.3f}",
                    spread(light_reps),
                    f"{res['lightning_fit_s']:.2f}",
                    f"{lt['train_batches']}+{lt['val_batches']}",
                    f"{lt['train_loss']:.6f}",
                    f"{lt['val_loss']:.6f}",
                ],
            ],
        ),
        "",
        f"Ratio Lightning / bare per epoch: **{res['ratio']:.3f}** best-of-{reps} "
        f"({res['ratio_median']:.3f} on medians); target ≤ {res['target']} — "
        f"**{'met' if res['met'] else 'not met'}**. Whole fit including Lightning's one-off "
        f"work (sanity check, hooks, end-of-fit callbacks): "
        f"{res['lightning_fit_s'] / res['bare_fit_s']:.3f}×.",
    ]
    if "profile" in res:
        rows = [
            [
                name,
                PROFILE_VARIANTS[name],
                p["progress_bar"],
                f"{p['s_per_epoch']:.3f}",
                f"{p['ratio']:.3f}",
                f"{p['fit_s']:.2f}",
            ]
            for name, p in res["profile"].items()
        ]
        lines += [
            "",
            f"Profile ({res['profile_repeats']} rounds, every variant once per round; best run "
            "of each; ratio against the best bare-loop run of the same rounds):",
            "",
            md_table(
                ["variant", "what", "progress bar", "s / epoch", "ratio vs bare", "whole fit s"],
                rows,
            ),
        ]
    return "\n".join(lines)


def worker_tty(args: argparse.Namespace) -> None:
    quiet_lightning()
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        ctx = setup(args.epochs, args.override, Path(tmp), args.threads)
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
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads for both loops (default: torch's, = CPU cores)",
    )
    add_nice_option(parser)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--worker-tty", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    sigterm_exits()
    if args.worker_tty:
        worker_tty(args)
        return 0
    res = measure(args)
    write_json(args.json, res)
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
