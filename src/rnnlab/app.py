"""The Hydra app: compose ``conf/`` and run prepare -> train -> evaluate in one process.

    python -m rnnlab.app model=gru trainer.max_epochs=20
    python -m rnnlab.app -m model=rnn,lstm,gru,bilstm,lstm_attn,mlp,transformer

Each job writes under its own Hydra output directory and logs one MLflow run; the returned
value (the monitored validation figure, `task.monitor`) is what hyper-parameter sweepers optimise.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rnnlab.config import CONF_DIR, best_key, validate
from rnnlab.errors import RnnlabError
from rnnlab.hydra_callbacks import FAILED_JOB_FILE, PARENT_RUN_FILE
from rnnlab.hydra_overrides import install as install_did_you_mean
from rnnlab.paths import RunPaths
from rnnlab.recovery import exit_on_signals, remove_orphaned_temp

log = logging.getLogger("rnnlab")
install_did_you_mean()  # before Hydra composes: a misspelt override names the closest key


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    exit_on_signals()
    remove_orphaned_temp(RunPaths(output_dir).staging_parents)
    if multirun:
        _join_sweep(hydra_cfg, cfg)
    try:
        cfg = validate(cfg)
        from rnnlab.optuna_search import RUN_ATTR, job_callbacks
        from rnnlab.pipeline import run_pipeline

        trial, callbacks = job_callbacks(hydra_cfg, cfg.task.monitor) if multirun else (None, [])
        paths = RunPaths(output_dir)
        if multirun:  # jobs with the same data settings share one prepared copy
            from rnnlab.data.cache import shared_paths

            paths = shared_paths(cfg, output_dir, Path(hydra_cfg.sweep.dir))
        result = run_pipeline(cfg, paths, callbacks)
    except RnnlabError as err:
        log.error("%s", err)
        if multirun:
            return _report_failed_job(output_dir, str(err))
        sys.exit(2)
    except Exception as err:
        if not multirun:
            raise
        # A parallel launcher (joblib) aborts the whole sweep on an exception: report this
        # job, keep the others going. Its MLflow run, if it got one, is already FAILED.
        log.exception("Sweep job %s failed", hydra_cfg.job.override_dirname or output_dir)
        return _report_failed_job(output_dir, f"{type(err).__name__}: {err}")
    if "evaluate" not in result:  # a DDP worker process
        return None
    if trial is not None:  # the study's trials point at their MLflow runs
        trial.set_user_attr(RUN_ATTR, result["train"]["mlflow_run_id"])
    from rnnlab.tasks import get_spec

    test = get_spec(cfg.task.name).model_scores(result["evaluate"])
    score = result["train"][best_key(cfg.task.monitor)]
    log.info(
        "best %s %.5f | test %s",
        cfg.task.monitor,
        score,
        " ".join(f"{k}={v:.4f}" for k, v in test.items()),
    )
    return score


def _join_sweep(hydra_cfg: DictConfig, cfg: DictConfig) -> None:
    """Make this job's MLflow run a child of the sweep's parent run, and share the CPU fairly."""
    parent_file = Path(hydra_cfg.sweep.dir) / PARENT_RUN_FILE
    if parent_file.exists():
        os.environ["RNNLAB_PARENT_RUN_ID"] = parent_file.read_text(encoding="utf-8").strip()
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs")
    cpus = OmegaConf.select(hydra_cfg, "launcher.cpus_per_task")  # submitit: the job's cores
    # Jobs side by side each using every core oversubscribe the CPU (torch then runs many
    # times slower): give each job its share, unless trainer.num_threads says otherwise.
    if cfg.trainer.num_threads is not None:
        return
    if cpus is not None:
        cfg.trainer.num_threads = cpus
    elif n_jobs is not None and n_jobs != 1:
        cores = os.cpu_count() or 1
        cfg.trainer.num_threads = 1 if n_jobs < 0 else max(1, cores // n_jobs)


def _report_failed_job(output_dir: Path, reason: str) -> None:
    """Leave the reason where the sweep's end-of-run summary finds it; return no score."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / FAILED_JOB_FILE).write_text(f"{output_dir}: {reason}\n", encoding="utf-8")
    return None


if __name__ == "__main__":
    main()
