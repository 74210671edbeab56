"""DVC stage `evaluate`: test metrics and plots for the trained model, logged to its MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rnnlab import tracking
from rnnlab.io import read_json, write_json, write_text_atomic
from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.tasks import get_task


def run_evaluate(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    trained = load_trained(paths.model_dir)
    evaluation = get_task(trained.cfg.task.name).evaluate(trained.cfg, paths, trained.model)
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
