"""Hydra callbacks: prepare shared MLflow state once, in the parent, before sweep jobs start.

A sweep gets one parent MLflow run; each job's run becomes its child (``mlflow ui`` groups
them). The parent's id travels to the jobs in a file in the sweep directory rather than in an
environment variable: joblib reuses worker processes across sweeps, so their environment may
predate this sweep. Jobs that failed leave a marker file (``rnnlab.app``); the parent lists
them when the sweep ends, then writes the sweep's comparison report (``rnnlab.report``) to
``<sweep dir>/report/`` and logs it to the parent run. A sweep stopped by Ctrl-C or SIGTERM
still writes the report of the jobs that finished, and its parent run ends KILLED.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlab.recovery import exit_on_signals

log = logging.getLogger("rnnlab")

PARENT_RUN_FILE = "mlflow_parent_run.txt"  # in the sweep directory
FAILED_JOB_FILE = "FAILED.txt"  # in a job's output directory: the error that stopped it
REPORTS = ("leaderboard", "study", "none")


class MlflowSetup(Callback):
    """Create the MLflow database, experiment and the sweep's parent run before any job runs.

    Several processes opening a brand-new sqlite file race on its schema migration, and several
    creating the same experiment at once can file runs under the Default experiment.

    ``report``: what to build when the sweep ends: ``leaderboard``, ``study`` (the leaderboard
    plus the vanishing-gradient view) or ``none``.
    """

    def __init__(self, report: str = "leaderboard") -> None:
        if report not in REPORTS:
            raise ValueError(
                f"hydra.callbacks.mlflow_setup.report={report!r}; use one of {REPORTS}."
            )
        self.report = report

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        logger_cfg = OmegaConf.select(config, "logger")
        if logger_cfg is None or logger_cfg.backend != "mlflow":
            return
        from rnnlab.tracking import ensure_experiment, start_sweep_run, tracking_uri

        uri = tracking_uri(logger_cfg)
        experiment_id = ensure_experiment(uri, logger_cfg.experiment_name)
        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = " ".join(config.hydra.overrides.task)
        parent = start_sweep_run(uri, experiment_id, sweep_dir.name, overrides)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_RUN_FILE).write_text(parent, encoding="utf-8")
        # Hydra calls on_multirun_end only when every job has run. An interrupted sweep unwinds
        # (SIGTERM too, as SystemExit) and ends here at exit, with the jobs that finished.
        exit_on_signals()
        atexit.register(self._end, config, interrupted=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self._end)
        self._end(config, interrupted=False)

    def _end(self, config: DictConfig, interrupted: bool) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if interrupted:
            log.warning("Sweep interrupted; reporting the jobs that finished before it.")
        failed = sorted(p.parent for p in sweep_dir.glob(f"**/{FAILED_JOB_FILE}"))
        for job_dir in failed:
            log.error("Sweep job failed: %s", (job_dir / FAILED_JOB_FILE).read_text().strip())
        if failed:
            log.error("%d sweep job(s) failed; the others' results are kept.", len(failed))
        parent_file = sweep_dir / PARENT_RUN_FILE
        logger_cfg = OmegaConf.select(config, "logger")
        if not parent_file.exists() or logger_cfg is None:
            return
        from rnnlab.tracking import end_sweep_run, tracking_uri

        uri, parent = tracking_uri(logger_cfg), parent_file.read_text().strip()
        if self.report != "none":
            self._write_report(uri, logger_cfg.experiment_name, parent, sweep_dir / "report")
        end_sweep_run(uri, parent, len(failed), interrupted)

    def _write_report(self, uri: str, experiment: str, parent: str, output: Path) -> None:
        from rnnlab.report import build_report

        try:
            result = build_report(
                experiment, output, parent, study=self.report == "study", tracking_uri=uri
            )
        except Exception as error:  # the jobs' results stand even when the summary cannot be made
            log.warning(
                "No sweep report (%s). Make it by hand: python -m rnnlab.report --experiment %s "
                "--parent-run %s%s",
                error,
                experiment,
                parent,
                " --study" if self.report == "study" else "",
            )
            return
        log.info("Sweep report (%d runs by %s): %s", result["runs"], result["metric"], output)
