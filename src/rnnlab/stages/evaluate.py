"""DVC stage `evaluate`: test metrics and plots for the trained model, logged to its MLflow run."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rnnlab import tracking
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.tasks import get_spec

PREDICTIONS = "test.parquet"  # under predictions/: every test prediction, one per row


def run_evaluate(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    trained = load_trained(paths.model_dir)
    spec = get_spec(trained.cfg.task.name)
    evaluation = spec.load_task().evaluate(trained.cfg, paths, trained.model)
    spec.model_scores(evaluation.metrics)  # the contract: fail here, not in the app or report
    write_json(paths.metrics_dir / "test.json", evaluation.metrics)
    with atomic_dir(paths.plots_dir / "evaluate") as staging:
        for name, table in evaluation.plot_tables.items():
            table.to_csv(staging / f"{name}.csv", index=False)
        for name, figure in evaluation.figures.items():
            figure.savefig(staging / f"{name}.png", dpi=110)
    # Always swapped in (empty for tasks without per-example predictions): a DVC out.
    with atomic_dir(paths.predictions_dir) as staging:
        if evaluation.predictions is not None:
            evaluation.predictions.to_parquet(staging / PREDICTIONS, index=False)
    files = sorted((paths.plots_dir / "evaluate").iterdir())
    run = read_json(paths.run_info)
    if cfg.logger.backend == "mlflow" and run:
        tracking.log_metrics(cfg, run, evaluation.flat_metrics())
        tracking.log_artifacts(cfg, run, files)
        predictions = sorted(paths.predictions_dir.iterdir())
        tracking.log_artifacts(cfg, run, predictions, artifact_path="predictions")
        tracking.log_texts(cfg, run, evaluation.texts)
    return evaluation.metrics


if __name__ == "__main__":
    from rnnlab.cli import run_stage

    run_stage(run_evaluate)
