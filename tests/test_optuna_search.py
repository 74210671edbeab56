"""Optuna search behind Hydra (`hydra/sweeper=rnnlab_optuna`): space, pruning, trials as runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from rnnlab.errors import ConfigError
from rnnlab.lightning.callbacks import OptunaPruning
from rnnlab.optuna_search import PRUNED_ATTR, RUN_ATTR, StudySettings, search_space


def test_hydra_sweep_syntax_becomes_optuna_distributions() -> None:
    overrides = OverridesParser.create().parse_overrides(
        [
            "trainer.optimizer.lr=tag(log, interval(0.0005, 0.01))",
            "model.hidden_size=choice(32, 64)",
            "model.num_layers=1,2",
            "trainer.batch_size=range(16, 65, 16)",
            "task.horizon=tag(int, interval(4, 13))",
            "model.dropout=interval(0, 0.3)",
            "model=gru",
        ]
    )
    space, fixed = search_space(overrides)
    assert space["trainer.optimizer.lr"] == FloatDistribution(0.0005, 0.01, log=True)
    assert space["model.hidden_size"] == CategoricalDistribution([32, 64])
    assert space["model.num_layers"] == CategoricalDistribution([1, 2])
    assert space["trainer.batch_size"] == CategoricalDistribution([16, 32, 48, 64])
    assert space["task.horizon"] == IntDistribution(4, 13)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.3)
    assert fixed == ["model=gru"]
    with pytest.raises(ConfigError, match="pruner"):
        StudySettings(pruner="hyperband")


def test_pruning_stops_a_trailing_trial_like_early_stopping() -> None:
    study = optuna.create_study(
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    good = study.ask()
    for epoch, loss in enumerate([0.5, 0.2, 0.1]):
        good.report(loss, epoch)
    study.tell(good, 0.1)

    trial = study.ask()
    pruning = OptunaPruning(trial, "val/loss", PRUNED_ATTR)
    trainer = SimpleNamespace(sanity_checking=False, should_stop=False, current_epoch=0)
    trainer.callback_metrics = {"val/loss": torch.tensor(0.4)}  # ahead of 0.5: carry on
    pruning.on_validation_end(trainer, None)
    assert not trainer.should_stop
    trainer.current_epoch, trainer.callback_metrics = 1, {"val/loss": torch.tensor(0.9)}
    pruning.on_validation_end(trainer, None)  # far behind 0.2
    assert trainer.should_stop and trial.user_attrs[PRUNED_ATTR] == 1


@pytest.mark.slow
def test_a_small_study_runs_through_hydra_and_points_at_its_mlflow_runs(
    tmp_path: Path, quick_overrides: list[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [
        sys.executable, "-m", "rnnlab.app", "-m", "hparams_search=optuna_forecast",
        *quick_overrides, "trainer.num_threads=1",
        "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1", "hydra.sweeper.n_startup_trials=1",
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=small",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    study = optuna.load_study(study_name="small", storage=storage)
    assert len(study.trials) == 3
    assert all(t.state.is_finished() and RUN_ATTR in t.user_attrs for t in study.trials)
    client = MlflowClient(mlflow_uri)
    best_run = client.get_run(study.best_trial.user_attrs[RUN_ATTR])
    assert best_run.data.metrics["train/best_val_loss"] == pytest.approx(study.best_value)
    logged_lr = float(best_run.data.params["trainer.optimizer.lr"])
    assert logged_lr == pytest.approx(study.best_trial.params["trainer.optimizer.lr"])
    parent = best_run.data.tags["mlflow.parentRunId"]
    children = client.search_runs(
        [best_run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert {r.info.run_id for r in children} == {t.user_attrs[RUN_ATTR] for t in study.trials}
