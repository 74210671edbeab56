"""DVC stage `evaluate`: test metrics and plots for the trained model, logged to its MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rnnlab import tracking
from rnnlab.config import validate
from rnnlab.errors import DataError
from rnnlab.io import read_json, write_json, write_text_atomic
from rnnlab.paths import RunPaths
from rnnlab.tasks import get_task


def load_trained(paths: RunPaths) -> tuple[DictConfig, torch.nn.Module]:
    """Rebuild the trained model from ``models/`` alone: its config, metadata and weights."""
    if not (paths.model_dir / "model.pt").exists():
        raise DataError(f"No trained model in {paths.model_dir}; run the train stage first.")
    train_cfg = validate(OmegaConf.load(paths.model_dir / "config.yaml"))
    meta = read_json(paths.model_dir / "model_meta.json")
    model = get_task(train_cfg.task.name).build_model(train_cfg, meta)
    state = torch.load(paths.model_dir / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return train_cfg, model.eval()


def run_evaluate(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    train_cfg, model = load_trained(paths)
    evaluation = get_task(train_cfg.task.name).evaluate(train_cfg, paths, model)
    write_json(paths.metrics_dir / "test.json", evaluation.metrics)
    files: list[Path] = []
    for name, table in evaluation.plot_tables.items():
        path = paths.plots_dir / f"{name}.csv"
        write_text_atomic(path, table.to_csv(index=False))
        files.append(path)
    for name, figure in evaluation.figures.items():
        path = paths.plots_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        files.append(path)
    run = read_json(paths.run_info)
    if cfg.logger.backend == "mlflow" and run:
        tracking.log_metrics(cfg, run, evaluation.flat_metrics())
        tracking.log_artifacts(cfg, run, files)
    return evaluation.metrics


if __name__ == "__main__":
    from rnnlab.cli import run_stage

    run_stage(run_evaluate)
