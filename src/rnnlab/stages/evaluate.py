"""DVC stage `evaluate`: test metrics and plots for the trained model, logged to its MLflow run."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from omegaconf import DictConfig, OmegaConf

from rnnlab import tracking
from rnnlab.errors import ConfigError, DataError
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.model_store import load_trained, weights_sha256
from rnnlab.paths import RunPaths
from rnnlab.recovery import stopped_by_signal
from rnnlab.tasks import get_spec

PREDICTIONS = "test.parquet"  # under predictions/: every test prediction, one per row


def run_evaluate(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    trained = load_trained(paths.model_dir)
    run = training_run(paths)
    if cfg.logger.backend != "mlflow":
        run = None
    if trained.cfg.task.name != cfg.task.name:
        raise ConfigError(
            f"{paths.model_dir} holds a task={trained.cfg.task.name} model, but the config says "
            f"task={cfg.task.name}; run the train stage first (`dvc repro`)."
        )
    try:
        spec = get_spec(cfg.task.name)
        # The model as trained, evaluated with the current evaluation settings (params.yaml or
        # the app's config), which the model directory does not hold.
        settings = OmegaConf.merge(trained.cfg, {"evaluate": cfg.evaluate})
        evaluation = spec.load_task().evaluate(settings, paths, trained.model)
        spec.model_scores(evaluation.metrics)  # the contract: fail here, not in the app or report
        write_json(paths.metrics_dir / "test.json", evaluation.metrics)
        with atomic_dir(paths.plots_dir / "evaluate") as staging:
            for name, table in evaluation.plot_tables.items():
                table.to_csv(staging / f"{name}.csv", index=False)
            for name, figure in evaluation.figures.items():
                figure.savefig(staging / f"{name}.png", dpi=110)
                plt.close(figure)  # pyplot keeps every figure alive until closed
        # Always swapped in (empty for tasks without per-example predictions): a DVC out.
        with atomic_dir(paths.predictions_dir) as staging:
            if evaluation.predictions is not None:
                evaluation.predictions.to_parquet(staging / PREDICTIONS, index=False)
        files = sorted((paths.plots_dir / "evaluate").iterdir())
        if run is not None:
            tracking.log_metrics(cfg, run, evaluation.flat_metrics())
            tracking.log_artifacts(cfg, run, files)
            predictions = sorted(paths.predictions_dir.iterdir())
            tracking.log_artifacts(cfg, run, predictions, artifact_path="predictions")
            tracking.log_texts(cfg, run, evaluation.texts)
            tracking.set_tags(cfg, run, {f"evaluate.{k}": v for k, v in cfg.evaluate.items()})
    except BaseException as error:
        tracking.end_run(cfg, run, status="KILLED" if stopped_by_signal(error) else "FAILED")
        raise
    tracking.end_run(cfg, run)  # FINISHED again if an earlier evaluation of it had failed
    return evaluation.metrics


def training_run(paths: RunPaths) -> dict[str, Any] | None:
    """The MLflow run that trained the model in ``models/`` (None: unknown or not logged).

    Refuses when the record names another model: results must never be logged to a run that
    did not produce the model they describe.
    """
    if not paths.run_info.exists():
        print(f"note: {paths.run_info} not found; test results go to no MLflow run.")
        return None
    run = read_json(paths.run_info)
    if run.get("model_sha256") != weights_sha256(paths.model_dir):
        raise DataError(
            f"{paths.model_dir} holds another model than the one MLflow run "
            f"{run.get('run_id')} trained ({paths.run_info}); its results would be logged to the "
            f"wrong run. Retrain (`dvc repro -f train`), or delete {paths.run_info} to evaluate "
            "without logging to MLflow."
        )
    return run if run.get("run_id") else None


if __name__ == "__main__":
    from rnnlab.cli import run_stage

    run_stage(run_evaluate)
