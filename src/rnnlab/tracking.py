"""Everything MLflow, in one place.

One training run is one MLflow run. Train opens it (params, tags, per-epoch metrics through
Lightning's ``MLFlowLogger``, the model); evaluate reopens it by the id that train saved in
``.rnnlab/run.json`` (beside ``models/``, not in it) and adds test metrics and plots.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rnnlab.paths import repo_root
from rnnlab.recovery import process_tags

# Chosen, flattened params: what people filter and compare runs on in `mlflow ui`.
LOGGED_PARAMS = ("seed", "task", "data", "model", "trainer")
_SKIPPED = {"data.path", "trainer.num_workers", "trainer.devices", "trainer.strategy"}
# Runs that are not trainings (a sweep's parent, a comparison report) carry this tag.
KIND_TAG = "rnnlab.kind"
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
# A key made by the client for each run it opens: finds twins made by a retried request.
RUN_KEY_TAG = "rnnlab.run_key"


def tracking_uri(logger_cfg: DictConfig | None = None) -> str:
    """Explicit config, else ``MLFLOW_TRACKING_URI``, else ``<repo root>/mlflow.db`` (sqlite)."""
    if logger_cfg is not None and logger_cfg.tracking_uri:
        return str(logger_cfg.tracking_uri)
    if env_uri := os.environ.get(ENV_TRACKING_URI):
        return env_uri
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


@contextmanager
def process_tracking_uri(uri: str | None = None) -> Iterator[None]:
    """MLflow's process-wide tracking URI, set to ``uri`` (if given) for this block only.

    MLflow's fluent API and Lightning's ``MLFlowLogger`` set it, and MLflow's setter also
    writes ``MLFLOW_TRACKING_URI`` into the environment; neither may outlive a run, or later
    MLflow calls of the same process (a notebook, the next job of a sweep) talk to this run's
    store. Both are put back exactly as they were: MLflow's own ``_use_tracking_uri`` restores
    the setting but not the environment variable.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils  # the setting itself: no public getter

    setting, environment = utils._tracking_uri, os.environ.get(ENV_TRACKING_URI)
    if uri is not None:
        mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(setting)
        if environment is None:
            os.environ.pop(ENV_TRACKING_URI, None)
        else:
            os.environ[ENV_TRACKING_URI] = environment


def _artifact_location(uri: str) -> str | None:
    """Keep artifacts beside a local sqlite database instead of under the current directory."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


def ensure_experiment(uri: str, name: str) -> str:
    """Return the id of experiment ``name``, creating it (and the database) if needed.

    A new sqlite database is created under a file lock beside it: processes that start at the
    same moment would otherwise race on MLflow's schema migration. Runs left RUNNING by a
    process that no longer exists are closed here too (``rnnlab.recovery``).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from rnnlab.recovery import close_orphaned_runs

    with _store_lock(uri):
        client = MlflowClient(uri)
        close_orphaned_runs(client)
        if (found := client.get_experiment_by_name(name)) is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri))
        except MlflowException:  # another process created it between our lookup and create
            return client.get_experiment_by_name(name).experiment_id


def _store_lock(uri: str) -> Any:
    """An exclusive lock on a local sqlite store (no-op for other stores)."""
    from contextlib import nullcontext

    if not uri.startswith("sqlite:///"):
        return nullcontext()
    from filelock import FileLock

    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{database}.lock", timeout=300)


def flatten_params(cfg: DictConfig) -> dict[str, Any]:
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True)
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)
        elif prefix not in _SKIPPED:
            flat[prefix] = node

    for key in LOGGED_PARAMS:
        walk(key, container[key])
    return flat


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def create_run_once(client: Any, experiment_id: str, name: str, tags: dict[str, str]) -> Any:
    """``client.create_run``, made safe to retry: exactly one run carries the returned id.

    MLflow's HTTP client retries any request whose answer was lost, POSTs included; a server
    restarted after committing ``runs/create`` but before answering gets the run created twice,
    and the first copy, which no one logs to, would stay RUNNING in the experiment. The run
    carries a fresh key; any other run with that key is such a copy and is deleted.
    """
    import uuid

    key = uuid.uuid4().hex
    run = client.create_run(experiment_id, run_name=name, tags={**tags, RUN_KEY_TAG: key})
    twins = client.search_runs([experiment_id], f"tags.`{RUN_KEY_TAG}` = '{key}'")
    for twin in twins:
        if twin.info.run_id != run.info.run_id:
            client.delete_run(twin.info.run_id)
    return run


def start_run(cfg: DictConfig, data_meta: dict[str, Any], extra_params: dict[str, Any]) -> dict:
    """Open the run for one training; return the handle that train saves to ``run.json``."""
    from mlflow import MlflowClient

    uri = tracking_uri(cfg.logger)
    experiment_id = ensure_experiment(uri, cfg.logger.experiment_name)
    client = MlflowClient(uri)
    tags = {
        "mlflow.source.git.commit": git_commit(repo_root()),
        "data_sha256": data_meta.get("raw_sha256", "unknown"),
        "task": cfg.task.name,
        "model": cfg.model.name,
        "dataset": cfg.data.name,
        **process_tags(),
    }
    if exp_name := os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = exp_name
    if parent := os.environ.get("RNNLAB_PARENT_RUN_ID"):
        tags["mlflow.parentRunId"] = parent
    run = create_run_once(client, experiment_id, run_name(cfg), tags)
    params = {**flatten_params(cfg), **extra_params}
    from mlflow.entities import Param

    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return {"run_id": run.info.run_id, "experiment_id": experiment_id}


# Short names for the settings most often varied; any other setting is named by its last key.
ABBREVIATIONS = {
    "model.hidden_size": "h",
    "model.num_layers": "l",
    "model.dropout": "do",
    "trainer.optimizer.lr": "lr",
    "trainer.optimizer.weight_decay": "wd",
    "trainer.batch_size": "bs",
    "trainer.max_epochs": "ep",
    "trainer.scheduler.name": "",
}
# Already in the name, or CPU plumbing rather than what makes a variant.
NOT_IN_NAMES = (
    "model.name", "task.name", "data.name",
    "trainer.num_threads", "trainer.num_workers", "trainer.grad_flow_batches",
)  # fmt: skip


def run_name(cfg: DictConfig, conf_dir: Path | None = None) -> str:
    """``<model>-<what differs from the defaults>-<data>``, e.g. ``gru-h128-lr1e-3-co2``: the
    settings that differ from ``conf/model/<model>.yaml``, ``conf/task/<task>.yaml`` (with its
    presets for model and trainer), ``conf/data/<data>.yaml`` and ``conf/trainer/default.yaml``,
    over the schema defaults, so runs can be told apart in the MLflow list."""
    from omegaconf import OmegaConf

    from rnnlab.config import (
        CONF_DIR,
        Config,
        ModelConfig,
        TrainerConfig,
        group_file_values,
        group_presets,
    )
    from rnnlab.tasks import get_spec

    conf_dir = conf_dir or CONF_DIR
    spec = get_spec(cfg.task.name)
    sections = {
        "model": (ModelConfig, cfg.model.name),
        "task": (spec.task_schema, cfg.task.name),
        "data": (spec.data_schema, cfg.data.name),
        "trainer": (TrainerConfig, "default"),
    }
    has_task_file = (conf_dir / "task" / f"{cfg.task.name}.yaml").exists()
    presets = group_presets("task", cfg.task.name, conf_dir) if has_task_file else {}
    parts = []
    for section, (schema, option) in sections.items():
        if not (conf_dir / section / f"{option}.yaml").exists():
            continue
        own = group_file_values(section, option, conf_dir)
        layers = [
            OmegaConf.structured(schema),
            own,
            *([presets[section]] if section in presets else []),
        ]
        defaults = _leaves(OmegaConf.merge(*layers), section)
        for key, value in _leaves(cfg[section], section).items():
            if key in NOT_IN_NAMES or key not in defaults or value == defaults[key]:
                continue
            if (isinstance(value, str) and "/" in value) or isinstance(value, list):
                continue  # paths and lists make names unreadable
            parts.append(ABBREVIATIONS.get(key, key.rsplit(".", 1)[-1]) + _short(value))
    if cfg.seed != Config.seed:
        parts.append(f"seed{cfg.seed}")
    name = "-".join([cfg.model.name, *parts, cfg.data.name])
    return name if len(name) <= 80 else name[:77] + "..."


def _leaves(node: Any, prefix: str) -> dict[str, Any]:
    """``{"trainer.optimizer.lr": 0.003, ...}`` for a config section."""
    from omegaconf import OmegaConf

    flat: dict[str, Any] = {}

    def walk(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for name, child in value.items():
                walk(f"{key}.{name}", child)
        else:
            flat[key] = value

    walk(prefix, OmegaConf.to_container(node, resolve=True))
    return flat


def _short(value: Any) -> str:
    """0.001 -> 1e-3, 0.2 -> 0.2, 128 -> 128, True -> true."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float) and value != 0 and abs(value) < 0.01:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def start_sweep_run(uri: str, experiment_id: str, name: str, overrides: str) -> str:
    """Open the parent run of a sweep (its jobs tag it as ``mlflow.parentRunId``); return its id."""
    from mlflow import MlflowClient

    tags = {
        "mlflow.source.git.commit": git_commit(repo_root()),
        "sweep": overrides,
        KIND_TAG: "sweep",
        **process_tags(),
    }
    run = create_run_once(MlflowClient(uri), experiment_id, f"sweep-{name}", tags)
    return run.info.run_id


def end_sweep_run(uri: str, run_id: str, failed_jobs: int, interrupted: bool = False) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    client.set_tag(run_id, "failed_jobs", str(failed_jobs))
    if interrupted:
        note = "Sweep interrupted before all its jobs ran; its report covers those that did."
        client.set_tag(run_id, "rnnlab.note", note)
    client.set_terminated(run_id, status="KILLED" if interrupted else "FINISHED")


def lightning_logger(cfg: DictConfig, run: dict | None) -> Any:
    if run is None:
        return False
    from pytorch_lightning.loggers import MLFlowLogger

    return MLFlowLogger(
        experiment_name=cfg.logger.experiment_name,
        tracking_uri=tracking_uri(cfg.logger),
        run_id=run["run_id"],
    )


def log_artifacts(
    cfg: DictConfig,
    run: dict,
    files: list[Path],
    config_yaml: str | None = None,
    artifact_path: str = "plots",
) -> None:
    """Log ``files`` under ``artifact_path/`` in the run, and the resolved config if given."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(cfg.logger))
    for path in files:
        client.log_artifact(run["run_id"], str(path), artifact_path=artifact_path)
    if config_yaml is not None:
        client.log_text(run["run_id"], config_yaml, "config/resolved_config.yaml")


def log_texts(cfg: DictConfig, run: dict, texts: dict[str, str]) -> None:
    """Log each text (e.g. generated samples) as ``texts/<name>.txt`` in the run."""
    if not texts:
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(cfg.logger))
    for name, text in texts.items():
        client.log_text(run["run_id"], text, f"texts/{name}.txt")


def set_tags(cfg: DictConfig, run: dict, tags: dict[str, Any]) -> None:
    """Tags, unlike params, may change: evaluation settings can differ between evaluations."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(cfg.logger))
    for key, value in tags.items():
        client.set_tag(run["run_id"], key, str(value))


def log_metrics(cfg: DictConfig, run: dict, metrics: dict[str, float]) -> None:

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    MlflowClient(tracking_uri(cfg.logger)).log_batch(run["run_id"], metrics=batch)


def reopen_run(cfg: DictConfig, run: dict) -> None:
    """Continue an interrupted run (resumed training): RUNNING again, owned by this process."""
    from mlflow import MlflowClient

    uri = tracking_uri(cfg.logger)
    ensure_experiment(uri, cfg.logger.experiment_name)  # closes runs of dead processes
    client = MlflowClient(uri)
    client.update_run(run["run_id"], status="RUNNING")
    for key, value in {**process_tags(), "rnnlab.note": "resumed from its last checkpoint"}.items():
        client.set_tag(run["run_id"], key, value)


def end_run(cfg: DictConfig, run: dict | None, status: str = "FINISHED") -> None:
    if run is None:
        return
    from mlflow import MlflowClient

    MlflowClient(tracking_uri(cfg.logger)).set_terminated(run["run_id"], status=status)
