"""Hydra callbacks: prepare shared MLflow state once, in the parent, before sweep jobs start."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class MlflowSetup(Callback):
    """Create the MLflow database and experiment before any job runs.

    Several processes opening a brand-new sqlite file race on its schema migration, and several
    creating the same experiment at once can file runs under the Default experiment.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        logger_cfg = OmegaConf.select(config, "logger")
        if logger_cfg is None or logger_cfg.backend != "mlflow":
            return
        from rnnlab.tracking import ensure_experiment, tracking_uri

        ensure_experiment(tracking_uri(logger_cfg), logger_cfg.experiment_name)
