"""DVC stage `train`: fit the configured network, keep the best weights, open the MLflow run.

An interrupted training resumes from its last checkpoint (``trainer.resume``, see
``rnnlab.lightning.resume``); a new model replaces ``models/`` whole, and the metrics and plots
of the model it replaces are removed with it.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from rnnlab import tracking
from rnnlab.config import best_key, training_config
from rnnlab.errors import TrainingError
from rnnlab.io import atomic_dir, write_json, write_text_atomic
from rnnlab.lightning import is_primary_process
from rnnlab.lightning.grad_flow import CSV_NAME as GRAD_FLOW_CSV
from rnnlab.lightning.grad_flow import FIGURE_NAME as GRAD_FLOW_FIGURE
from rnnlab.lightning.resume import Resumable, fingerprint
from rnnlab.lightning.trainer import build_trainer, configure_cpu
from rnnlab.model_store import save_trained, weights_sha256
from rnnlab.models import count_parameters
from rnnlab.paths import RunPaths
from rnnlab.recovery import signals_at_safe_points, stopped_by_signal
from rnnlab.tasks import get_task
from rnnlab.tasks.base import Task


def run_train(
    cfg: DictConfig, paths: RunPaths, callbacks: Sequence[pl.Callback] = ()
) -> dict[str, Any]:
    """Fit, keep the best checkpoint, log the run; ``callbacks`` join the trainer's own."""
    with tracking.process_tracking_uri():  # Lightning's MLFlowLogger sets it process-wide
        return _train(cfg, paths, callbacks)


def _train(cfg: DictConfig, paths: RunPaths, callbacks: Sequence[pl.Callback]) -> dict[str, Any]:
    cfg = training_config(cfg)  # DVC's train stage does not depend on evaluation settings
    task = get_task(cfg.task.name)
    configure_cpu(cfg.trainer)
    data = task.load_data(cfg, paths)
    if is_primary_process():
        print(describe_data(cfg, data), flush=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = task.build_model(cfg, data.meta)
    n_params = count_parameters(model)
    loaders = data_loaders(data, cfg.trainer)
    if not is_primary_process():
        return _fit_as_ddp_worker(cfg, task, model, loaders)

    resumable = Resumable(paths.resume_dir, fingerprint(cfg, data.meta))
    resume_from = resumable.checkpoint() if cfg.trainer.resume else None
    run = resumable.run() if resume_from else None
    if run is not None:
        tracking.reopen_run(cfg, run)
    elif cfg.logger.backend == "mlflow":
        # The thread count changes the floating-point summation order, so it is part of what
        # makes a run reproducible.
        extra = {"n_parameters": n_params, "torch_threads": torch.get_num_threads()}
        run = tracking.start_run(cfg, data.meta, extra)
    if resume_from:
        print(f"Resuming training from {resume_from}", flush=True)
    resumable.begin(run, resuming=resume_from is not None)
    try:
        # The model directory is swapped in only after training succeeds (see atomic_dir).
        with atomic_dir(paths.model_dir) as staging:
            trainer, checkpoint = build_trainer(
                cfg.trainer,
                staging,
                tracking.lightning_logger(cfg, run),
                cfg.task.monitor,
                checkpoint_dir=resumable.checkpoints,
                resume_from=resume_from,
                extra_callbacks=callbacks,
            )
            module = task.lightning_module(model, cfg)
            started = time.perf_counter()
            with signals_at_safe_points():
                trainer.fit(module, *loaders)
            seconds = time.perf_counter() - started  # fitting only, not saving or logging
            if not checkpoint.best_model_path:
                raise TrainingError(
                    "Training produced no checkpoint; check trainer.max_epochs > 0."
                )
            best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(best["state_dict"])
            best_score = _best_score(best)
            curve = pd.read_csv(staging / "history.csv")
            at_best = _val_figures_at(curve, epoch=int(best["epoch"]) + 1)
            save_trained(staging, cfg, data.meta, model)
            if run is not None and cfg.logger.log_model:
                from rnnlab.pyfunc import log_pyfunc

                example = task.example_frame(cfg, paths)
                log_pyfunc(tracking.tracking_uri(cfg.logger), run["run_id"], staging, example)
            # Results of the model about to be replaced must not outlive it.
            remove_results(paths)
        write_json(paths.run_info, {**(run or {}), "model_sha256": weights_sha256(paths.model_dir)})
    except BaseException as error:
        tracking.end_run(cfg, run, status="KILLED" if stopped_by_signal(error) else "FAILED")
        raise
    resumable.finish()

    write_text_atomic(paths.plots_dir / "learning_curve.csv", curve.to_csv(index=False))
    # Timings vary from run to run: they go to MLflow and the summary, not to the hashed
    # metrics file, so identical trainings leave identical outputs.
    # The kept epoch's validation figures; the monitored one as the checkpoint recorded it.
    summary = {
        **at_best,
        best_key(cfg.task.monitor): best_score,
        "epochs": len(curve),
        "n_parameters": n_params,
        "train_windows": len(data.train),
        "val_windows": len(data.val),
    }
    write_json(paths.metrics_dir / "train.json", summary)
    summary["train_seconds"] = round(seconds, 2)
    if run is not None:
        tracking.log_metrics(cfg, run, {f"train/{k}": v for k, v in summary.items()})
        grad_flow = [paths.model_dir / name for name in (GRAD_FLOW_CSV, GRAD_FLOW_FIGURE)]
        files = [paths.plots_dir / "learning_curve.csv", *(f for f in grad_flow if f.exists())]
        tracking.log_artifacts(cfg, run, files, config_yaml=OmegaConf.to_yaml(cfg))
        tracking.end_run(cfg, run)  # trained and logged; evaluation adds its metrics later
    return {**summary, "mlflow_run_id": run["run_id"] if run else None}


# Prepared-data facts worth a line at the start of training, when the task's metadata has them.
SUMMARY_KEYS = (
    "rows", "missing_filled", "target_columns", "covariate_columns", "channels", "level",
    "tokens", "unknown_tokens", "pairs", "counts", "classes",
)  # fmt: skip
VOCABULARIES = ("vocab", "source_vocab", "target_vocab")
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def describe_data(cfg: DictConfig, data: Any) -> str:
    """A few lines on what the model is about to train on: dataset, split sizes, windows and
    batches per epoch, vocabulary, classes."""
    meta, batch = data.meta, cfg.trainer.batch_size
    lines = [
        f"data: {meta.get('dataset', cfg.data.name)} for task={cfg.task.name}; "
        f"train {len(data.train):,} examples ({math.ceil(len(data.train) / batch):,} batches of "
        f"{batch} per epoch), val {len(data.val):,}"
    ]
    for key in VOCABULARIES:
        if key in meta:
            tokens = meta[key]["tokens"] if isinstance(meta[key], dict) else meta[key]
            lines.append(
                f"  {key}: {len(tokens):,} tokens ({', '.join(map(repr, tokens[:12]))}, ...)"
            )
    for key in SUMMARY_KEYS:
        value = meta.get(key)
        if value is None or value == []:
            continue
        if isinstance(value, dict):  # per split, in split order
            ordered = sorted(value.items(), key=lambda item: SPLIT_ORDER.get(item[0], 3))
            value = ", ".join(f"{split} {n:,}" for split, n in ordered)
        elif isinstance(value, list):
            shown = ", ".join(map(str, value[:10])) + (", ..." if len(value) > 10 else "")
            value = f"{len(value)}: {shown}"
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def remove_results(paths: RunPaths) -> None:
    """Delete the metrics, plots and predictions that describe the model in ``models/``."""
    for path in (
        paths.metrics_dir / "train.json",
        paths.metrics_dir / "test.json",
        paths.plots_dir / "learning_curve.csv",
    ):
        path.unlink(missing_ok=True)
    for directory in (paths.plots_dir / "evaluate", paths.predictions_dir):
        shutil.rmtree(directory, ignore_errors=True)


def _best_score(checkpoint: dict[str, Any]) -> float:
    """The monitored score of the best epoch, as ModelCheckpoint recorded it in the file."""
    for state in checkpoint["callbacks"].values():
        if "best_model_score" in state:
            return float(state["best_model_score"])
    raise TrainingError("The best checkpoint carries no score; is task.monitor logged?")


def _val_figures_at(curve: pd.DataFrame, epoch: int) -> dict[str, float]:
    """The validation figures (``val_loss``, ``val_accuracy`` ...) at ``epoch`` of the learning
    curve, named ``best_val_<figure>``: those of the model that is kept."""
    rows = curve[curve["epoch"] == epoch]
    names = [c for c in curve.columns if c.startswith("val_")]
    if rows.empty:
        return {}
    return {f"best_{name}": float(rows[name].iloc[-1]) for name in names}


def _fit_as_ddp_worker(cfg: DictConfig, task: Task, model: Any, loaders: tuple) -> dict[str, Any]:
    """Join rank 0's training; rank 0 alone writes the model, metrics and MLflow run."""
    with tempfile.TemporaryDirectory() as scratch:
        trainer, _ = build_trainer(cfg.trainer, Path(scratch), False, cfg.task.monitor)
        trainer.fit(task.lightning_module(model, cfg), *loaders)
    return {}


def data_loaders(data: Any, trainer_cfg: DictConfig) -> tuple[DataLoader, DataLoader]:
    # Shuffling draws from the global RNG that seed_everything seeded; an explicit
    # torch.Generator would be simpler but cannot be pickled into ddp_spawn workers.
    common = {
        "batch_size": trainer_cfg.batch_size,
        "num_workers": trainer_cfg.num_workers,
        "persistent_workers": trainer_cfg.num_workers > 0,
    }
    train = DataLoader(data.train, shuffle=not data.ordered, drop_last=False, **common)
    val = DataLoader(data.val, shuffle=False, **common)
    return train, val


if __name__ == "__main__":
    from rnnlab.cli import run_stage

    run_stage(run_train)
