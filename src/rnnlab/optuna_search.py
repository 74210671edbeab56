"""Hyper-parameter search with Optuna behind Hydra's sweeper interface.

The sweeper (``hydra/sweeper=rnnlab_optuna``) asks Optuna for ``n_jobs`` trials at a time,
hands their overrides to Hydra's launcher (one after another, joblib, submitit, ...) and tells
Optuna each job's returned best validation loss. Each job finds its trial through the study's
storage: it reports the validation loss every epoch so the pruner can stop a trailing trial
(training then ends like early stopping and is evaluated as usual), and records its MLflow run
id on the trial, so the study's best trial points at its run. Trials are MLflow child runs of
the sweep's parent run like any other sweep job (``rnnlab.hydra_callbacks``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.errors import ConfigError
from rnnlab.paths import repo_root

log = logging.getLogger("rnnlab")

TRIAL_ENV = "RNNLAB_OPTUNA_TRIAL"  # the job's trial id, set through hydra.job.env_set
RUN_ATTR = "mlflow_run_id"  # trial user attribute: the job's MLflow run
# Trial user attribute set when the pruner stopped the job (rnnlab.lightning.callbacks).
PRUNED_ATTR = "pruned_at_epoch"
PRUNERS = ("median", "none")


@dataclass(frozen=True)
class StudySettings:
    """``hydra.sweeper.*`` (see ``hydra_plugins.rnnlab_optuna_sweeper``)."""

    study_name: str = "rnnlab"
    storage: str | None = None
    direction: str = "minimize"
    n_trials: int = 12
    n_jobs: int = 2
    seed: int | None = 42
    n_startup_trials: int = 4
    pruner: str = "median"
    params: dict[str, str] = field(default_factory=dict)
    _target_: str = ""

    def __post_init__(self) -> None:
        if self.pruner not in PRUNERS:
            raise ConfigError(f"hydra.sweeper.pruner={self.pruner!r}; use one of {PRUNERS}.")
        if self.n_trials < 1 or self.n_jobs < 1:
            raise ConfigError("hydra.sweeper.n_trials and n_jobs must be at least 1.")

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{repo_root() / 'optuna.db'}"


def search_space(overrides: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """Optuna distributions for the sweep overrides, and the fixed overrides as strings.

    ``choice(a,b)`` or ``a,b`` -> categorical; ``range(a,b,s)`` -> categorical of the range;
    ``interval(a,b)`` -> float; ``tag(int, interval(a,b))`` -> int; the ``log`` tag samples on a
    log scale (``tag(log, interval(a,b))``).
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space: dict[str, Any] = {}
    fixed: list[str] = []
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(f"{key}={override.get_value_element_as_str()}")
        elif override.is_interval_sweep():
            value = override.value()
            log_scale = "log" in value.tags
            if "int" in value.tags:  # Hydra's intervals are always floats
                space[key] = IntDistribution(int(value.start), int(value.end), log=log_scale)
            else:
                space[key] = FloatDistribution(value.start, value.end, log=log_scale)
        elif override.is_discrete_sweep():  # choice, a list, or a range
            space[key] = CategoricalDistribution(list(override.sweep_iterator()))
        else:
            raise ConfigError(f"`{key}`: the Optuna sweeper cannot search {override.value()}.")
    return space, fixed


def run_study(
    settings: StudySettings,
    arguments: list[str],
    config: Any,
    hydra_context: Any,
    launcher: Any,
) -> list[Any]:
    """The sweep: batches of asked trials through Hydra's launcher, results told to Optuna."""
    import optuna
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.utils import JobStatus
    from omegaconf import OmegaConf

    parser = OverridesParser.create(config_loader=hydra_context.config_loader)
    requested = [f"{k}={v}" for k, v in settings.params.items()] + list(arguments)
    space, fixed = search_space(parser.parse_overrides(requested))
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")

    study = optuna.create_study(
        study_name=settings.study_name,
        storage=settings.storage_url,
        direction=settings.direction,
        sampler=optuna.samplers.TPESampler(
            seed=settings.seed, n_startup_trials=settings.n_startup_trials
        ),
        pruner=_pruner(settings.pruner, settings.n_startup_trials),
        load_if_exists=True,
    )
    # The part after "@" only: a storage URL may carry a password.
    log.info("Optuna study %s in %s", settings.study_name, settings.storage_url.split("@")[-1])
    returns, done = [], 0
    while done < settings.n_trials:
        trials = [study.ask(space) for _ in range(min(settings.n_jobs, settings.n_trials - done))]
        batch = [
            [
                *fixed,
                *(f"{key}={value}" for key, value in trial.params.items()),
                f"++hydra.job.env_set.{TRIAL_ENV}={trial._trial_id}",
            ]
            for trial in trials
        ]
        results = launcher.launch(batch, initial_job_idx=done)
        for trial, result in zip(trials, results, strict=True):
            _tell(study, trial, result, JobStatus)
        returns.append(results)
        done += len(trials)
    _log_best(study)
    return returns


def _pruner(name: str, n_startup_trials: int) -> Any:
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=1)


def _tell(study: Any, trial: Any, result: Any, job_status: Any) -> None:
    from optuna.trial import TrialState

    value = result.return_value if result.status == job_status.COMPLETED else None
    frozen = study._storage.get_trial(trial._trial_id)  # the job's attributes, fresh
    if value is None:
        study.tell(trial, state=TrialState.FAIL)
    elif PRUNED_ATTR in frozen.user_attrs:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, float(value))


def _log_best(study: Any) -> None:
    try:
        best = study.best_trial
    except ValueError:
        log.error("Optuna study %s: no trial completed.", study.study_name)
        return
    log.info(
        "Best trial %d: %.5f with %s (MLflow run %s)",
        best.number,
        best.value,
        best.params,
        best.user_attrs.get(RUN_ATTR, "-"),
    )


def job_callbacks(hydra_cfg: Any, monitor: str) -> tuple[Any | None, list[Any]]:
    """This sweep job's Optuna trial and the pruning callback for it, or (None, [])."""
    trial = job_trial(hydra_cfg)
    if trial is None:
        return None, []
    from rnnlab.lightning.callbacks import OptunaPruning

    return trial, [OptunaPruning(trial, monitor, PRUNED_ATTR)]


def job_trial(hydra_cfg: Any) -> Any | None:
    """This sweep job's Optuna trial, or None outside an Optuna sweep."""
    trial_id = os.environ.get(TRIAL_ENV)
    target = str(hydra_cfg.sweeper.get("_target_", ""))
    if trial_id is None or not target.endswith("RnnlabOptunaSweeper"):
        return None
    import optuna

    settings = StudySettings(**hydra_cfg.sweeper)
    study = optuna.load_study(study_name=settings.study_name, storage=settings.storage_url)
    return optuna.Trial(study, int(trial_id))
