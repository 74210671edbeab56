"""Lightning training overhead: seconds per epoch, Lightning vs a bare PyTorch loop.

Target: an epoch under Lightning takes at most 1.25x the time of a bare PyTorch loop with the
same model, data, batch size, optimizer, loss, clipping and scheduler.

Both sides are set up as ``rnnlab.stages.train.run_train`` does it (``configure_cpu``,
``task.load_data``, ``seed_everything`` + ``task.build_model``, the stage's ``data_loaders``)
and do the same work per epoch: every training batch (forward, ``task.loss``, backward,
clip-by-norm, AdamW step), a no-grad pass over the validation batches, a ReduceLROnPlateau step.
Lightning runs through ``build_trainer`` (logger off) and ``task.lightning_module``. Epoch 1 is
a warm-up; a Lightning epoch is timed from one ``on_train_epoch_start`` to the next, so the last
epoch (which carries end-of-fit work) is run by both loops and timed by neither. Bare and
Lightning runs alternate (``--repeats``); the verdict uses the best run of each, the median is
beside it, and the final losses show that both trained the same model on the same batches.

``--profile`` (automatic above the target) ablates Lightning piece by piece: callbacks,
checkpointing, sanity check, the MLflow logger.

    python benchmarks/lightning_overhead.py [--epochs 5] [--repeats 5] [--profile] [--quick]
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    machine_line,
    md_table,
    median,
    parser_with_common_options,
    quiet_lightning,
    start,
    verdict,
    write_json,
)

TARGET = 1.25
COLUMNS = ["s / epoch, best", "median", "whole fit s, best", "final train / val loss"]
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


class Setup:
    """Config, task and data as run_train has them; ``fresh()`` seeds and builds model+loaders."""

    def __init__(self, overrides: list[str], epochs: int, workdir: Path) -> None:
        import torch

        from rnnlab.config import compose, validate
        from rnnlab.lightning.trainer import configure_cpu
        from rnnlab.paths import RunPaths
        from rnnlab.stages.prepare import run_prepare
        from rnnlab.tasks import get_task

        # 1 warm-up + ``epochs`` timed + 1 trailing epoch (see the module docstring).
        self.cfg = validate(compose([*overrides, f"trainer.max_epochs={epochs + 2}"]))
        self.workdir, paths = workdir, RunPaths(workdir)
        run_prepare(self.cfg, paths)
        self.task = get_task(self.cfg.task.name)
        configure_cpu(self.cfg.trainer)
        self.data = self.task.load_data(self.cfg, paths)
        # Lightning's Trainer(deterministic=True) sets this process-wide: same for both loops.
        torch.use_deterministic_algorithms(bool(self.cfg.trainer.deterministic))

    def fresh(self) -> tuple[Any, Any, Any]:
        import pytorch_lightning as pl

        from rnnlab.stages.train import data_loaders

        pl.seed_everything(self.cfg.seed, workers=True, verbose=False)
        model = self.task.build_model(self.cfg, self.data.meta)
        return (model, *data_loaders(self.data, self.cfg.trainer))


def run_bare(ctx: Setup) -> dict[str, Any]:
    import torch

    tc = ctx.cfg.trainer
    if tc.optimizer.name != "adamw" or tc.scheduler.name != "plateau":
        raise SystemExit("the bare loop mirrors the default AdamW + plateau settings only")
    model, train, val = ctx.fresh()
    opt = torch.optim.AdamW(
        model.parameters(), lr=tc.optimizer.lr, weight_decay=tc.optimizer.weight_decay
    )
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=tc.scheduler.factor, patience=tc.scheduler.patience
    )

    def forward(batch: dict[str, Any]) -> Any:  # what the LightningModule feeds the model
        return model(batch["x"], batch["lengths"]) if "lengths" in batch else model(batch["x"])

    def epoch(loader: Any, training: bool) -> float:
        model.train(training)
        total = count = 0.0
        with torch.set_grad_enabled(training):
            for batch in loader:
                loss = ctx.task.loss(forward(batch), batch)
                if training:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if tc.gradient_clip_val is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.gradient_clip_val)
                    opt.step()
                total, count = (
                    total + float(loss.detach()) * len(batch["x"]),
                    count + len(batch["x"]),
                )
        return total / count

    starts = []
    for _ in range(tc.max_epochs):
        starts.append(time.perf_counter())
        train_loss, val_loss = epoch(train, True), epoch(val, False)
        sched.step(val_loss)
    fit_s = time.perf_counter() - starts[0]
    return {"epoch_starts": starts, "fit_s": fit_s, "train_loss": train_loss, "val_loss": val_loss}


def plain_trainer(ctx: Setup, ckpt_dir: Path, variant: str) -> Any:
    """A pl.Trainer with build_trainer's settings and only the feature ``variant`` adds."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from rnnlab.lightning.callbacks import EpochLine, History
    from rnnlab.lightning.grad_flow import GradientFlow

    tc, monitor = ctx.cfg.trainer, ctx.cfg.task.monitor
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


def run_lightning(ctx: Setup, variant: str = "build_trainer") -> dict[str, Any]:
    """One fit, stdout captured (not a terminal, as in `dvc repro` from CI or a log)."""
    import pytorch_lightning as pl

    from rnnlab.lightning.trainer import build_trainer

    starts: list[float] = []

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, *_: Any) -> None:
            starts.append(time.perf_counter())

    model, train, val = ctx.fresh()
    with (
        tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        if variant in ("build_trainer", "mlflow"):
            logger: Any = False
            if variant == "mlflow":
                from pytorch_lightning.loggers import MLFlowLogger

                logger = MLFlowLogger("bench", tracking_uri=f"sqlite:///{tmp}/mlflow.db")
            trainer, _ = build_trainer(ctx.cfg.trainer, Path(tmp), logger, ctx.cfg.task.monitor)
        else:
            trainer = plain_trainer(ctx, Path(tmp), variant)
        trainer.callbacks.append(EpochTimer())
        started = time.perf_counter()
        trainer.fit(ctx.task.lightning_module(model, ctx.cfg), train, val)
    metrics = trainer.callback_metrics
    return {
        "epoch_starts": starts,
        "fit_s": time.perf_counter() - started,
        "train_loss": float(metrics["train/loss"]),
        "val_loss": float(metrics["val/loss"]),
    }


def per_epoch(run: dict[str, Any], epochs: int) -> float:
    """Mean seconds of the timed epochs: after the warm-up, start to next start."""
    spans = [b - a for a, b in itertools.pairwise(run["epoch_starts"])]
    return sum(spans[1 : epochs + 1]) / epochs


def measure(args: Any, ctx: Setup) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "lightning": []}
    for i in range(args.repeats):
        # Interleaved, alternating which goes first, so background load hits both alike.
        for name in ("bare", "lightning") if i % 2 == 0 else ("lightning", "bare"):
            runs[name].append(run_bare(ctx) if name == "bare" else run_lightning(ctx))
            seconds = per_epoch(runs[name][-1], args.epochs)
            print(f"  repeat {i + 1} {name:9s} {seconds:.3f} s/epoch", file=sys.stderr)
    best = {k: min(per_epoch(r, args.epochs) for r in v) for k, v in runs.items()}
    med = {k: median([per_epoch(r, args.epochs) for r in v]) for k, v in runs.items()}
    ratio = best["lightning"] / best["bare"]
    result = {"runs": runs, "best": best, "median": med, "ratio": ratio, "met": ratio <= TARGET}
    if args.profile or ratio > TARGET:
        result["profile"] = profile(ctx, args)
    return result


def profile(ctx: Setup, args: Any) -> dict[str, float]:
    """Every variant once per round, round-robin, so a burst of load does not hit one alone."""
    seconds: dict[str, list[float]] = {v: [] for v in PROFILE}
    for _ in range(args.profile_repeats):
        for variant in PROFILE:
            run = run_bare(ctx) if variant == "bare" else run_lightning(ctx, variant)
            seconds[variant].append(per_epoch(run, args.epochs))
            print(f"  profile {variant:15s} {seconds[variant][-1]:.3f} s/epoch", file=sys.stderr)
    return {v: min(s) for v, s in seconds.items()}


def to_markdown(res: dict[str, Any], info: dict[str, Any], args: Any, ctx: Setup) -> str:
    rows = [
        [
            loop,
            f"{res['best'][key]:.3f}",
            f"{res['median'][key]:.3f}",
            f"{min(r['fit_s'] for r in res['runs'][key]):.2f}",
            f"{res['runs'][key][-1]['train_loss']:.6f} / {res['runs'][key][-1]['val_loss']:.6f}",
        ]
        for key, loop in (("bare", "bare PyTorch"), ("lightning", "Lightning (`build_trainer`)"))
    ]
    text = [
        "### Lightning training overhead",
        machine_line(info) + f" Load at the end: {os.getloadavg()[0]:.2f}.",
        f"Overrides: {' '.join(args.override) or 'none'}; {len(ctx.data.train)} train / "
        f"{len(ctx.data.val)} val windows, batch size {ctx.cfg.trainer.batch_size}; mean of "
        f"{args.epochs} timed epochs after 1 warm-up, {args.repeats} interleaved repeats.",
        md_table([f"loop ({args.repeats} runs)", *COLUMNS], rows),
        f"Lightning / bare per epoch: **{res['ratio']:.3f}x** on the best runs "
        f"({res['median']['lightning'] / res['median']['bare']:.3f}x on the medians); "
        f"target ≤ {TARGET}x: {verdict(res['met'])}.",
    ]
    if "profile" in res:
        base = res["profile"]["bare"]
        rows = [[PROFILE[v], f"{s:.3f}", f"{s / base:.2f}"] for v, s in res["profile"].items()]
        text.append(f"Profile, best of {args.profile_repeats} rounds:")
        text.append(md_table(["variant", "s / epoch", "ratio vs bare"], rows))
    return "\n\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = parser_with_common_options(__doc__)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (plus 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats")
    parser.add_argument("--profile", action="store_true", help="ablate Lightning's features")
    parser.add_argument("--profile-repeats", type=int, default=3, help="rounds of the profile")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args(argv)
    info = start(args)
    if args.quick:  # a small model, one timed epoch, one round of everything
        args.override += ["experiment=quick"]
        args.epochs = args.repeats = args.profile_repeats = 1
    quiet_lightning()
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        ctx = Setup(args.override, args.epochs, Path(tmp))
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
            info["torch_threads"] = args.threads
        res = measure(args, ctx)
        print(to_markdown(res, info, args, ctx))
    write_json(args.json, {"machine": info, **res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
