"""Promote the best evaluated run of an experiment in the MLflow model registry.

    python -m rnnlab.registry promote --experiment rnnlab-forecast \\
        [--metric train/best_val_loss] [--mode min|max] [--name rnnlab-forecast] [--alias champion]
        [--data-sha256 HASH | --all-data]

"Evaluated" means: the run FINISHED, logged a model and has test metrics. Only runs of one task
on one dataset are compared (their ``task`` and ``data_sha256`` tags): by default those of the
most recent evaluated run, or the dataset given by ``--data-sha256``; ``--all-data`` compares
every evaluated run, which only makes sense when their metrics are comparable. The default metric is
``train/best_val_loss``, the validation loss of the checkpoint that was actually logged;
``val/loss`` is the last epoch's value, which can be worse than the saved model. Selection uses a
validation metric so the test split stays untouched by model choice.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from rnnlab.cli import user_errors_exit
from rnnlab.errors import ConfigError
from rnnlab.tasks.spec import higher_is_better
from rnnlab.tracking import tracking_uri

MODES = ("min", "max")


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    run_id: str
    metric: str
    value: float
    candidates: int
    compared: str  # which runs were compared, e.g. "task forecast on dataset co2 (sha256 ...)"

    def describe(self) -> str:
        return (
            f"registered the model of run {self.run_id} as {self.name} version {self.version} "
            f"with alias @{self.alias} ({self.metric}={self.value:.6g}, best of "
            f"{self.candidates} evaluated run(s) of {self.compared}); serve it as "
            f"models:/{self.name}@{self.alias}"
        )


def _logged_models(client: Any, experiment_id: str) -> dict[str, str]:
    """Run id -> id of its logged ``model`` (MLflow 3 keeps models apart from run artifacts),
    for the whole experiment in one paged search rather than one search per run. Only READY
    models: one whose upload never finished (its process died, or a retried request left a
    second, empty one) cannot be served."""
    from mlflow.entities import LoggedModelStatus

    by_run: dict[str, str] = {}
    token = None
    while True:
        page = client.search_logged_models(
            [experiment_id], filter_string="name = 'model'", page_token=token
        )
        for model in page:
            if model.status == LoggedModelStatus.READY:
                by_run.setdefault(model.source_run_id, model.model_id)
        token = page.token
        if not token:
            return by_run


def best_run(
    client: Any,
    experiment: str,
    metric: str,
    mode: str,
    data_sha256: str | None = None,
    all_data: bool = False,
) -> tuple[Any, str, int, str]:
    """The best evaluated run of ``experiment`` by ``metric``, its logged model's id, how many
    runs were compared and which (see the module docstring for the scope)."""
    if mode not in MODES:
        raise ConfigError(f"Unknown mode {mode!r}; choose one of {MODES}.")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError(
            f"No MLflow experiment {experiment!r} at {client.tracking_uri}; train a model first "
            "or set MLFLOW_TRACKING_URI to the tracking server that has it."
        )
    runs = client.search_runs(
        [found.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{metric}` {'ASC' if mode == 'min' else 'DESC'}"],
        max_results=1000,
    )
    models = _logged_models(client, found.experiment_id)
    evaluated = [
        (run, models[run.info.run_id])
        for run in runs
        if metric in run.data.metrics and any(key.startswith("test/") for key in run.data.metrics)
        if run.info.run_id in models
    ]
    if not evaluated:
        raise ConfigError(
            f"No FINISHED run in {experiment!r} has metric {metric!r}, test metrics and a "
            "logged model; run the whole pipeline (train and evaluate) with logger=mlflow, "
            "or pick another --metric."
        )
    if all_data:
        return (*evaluated[0], len(evaluated), "every task and dataset (--all-data)")
    tags = [run.data.tags for run, _ in evaluated]
    if data_sha256 is None:
        latest = max(evaluated, key=lambda pair: pair[0].info.start_time)[0].data.tags
    else:
        latest = next((t for t in tags if t.get("data_sha256") == data_sha256), None)
        if latest is None:
            known = sorted({t.get("data_sha256", "unknown")[:12] for t in tags})
            raise ConfigError(
                f"No evaluated run in {experiment!r} was trained on data {data_sha256!r}; "
                f"the runs' data hashes start with {known}."
            )
    scope = (latest.get("task"), latest.get("data_sha256"))
    same = [
        pair
        for pair in evaluated
        if (pair[0].data.tags.get("task"), pair[0].data.tags.get("data_sha256")) == scope
    ]
    compared = (
        f"task {scope[0]} on dataset {latest.get('dataset')} (data sha256 "
        f"{str(scope[1])[:12]}); --all-data compares every dataset"
    )
    return (*same[0], len(same), compared)


def _aliased_version(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such registered model or alias yet
        return None


def _register(client: Any, name: str, run_id: str, model_id: str) -> Any:
    """A new version of ``name`` from the logged model ``model_id`` of run ``run_id``.

    Not ``mlflow.register_model``: it works on the process-wide tracking and registry URIs, and
    setting those for it leaked into the caller, whose later ``MlflowClient(uri)`` then read the
    registry of an earlier ``promote`` (a registry URI set process-wide wins over a client's own
    tracking URI). The source is the model's artifact location with the run and model ids given
    explicitly, because a ``models:/<id>`` source makes MLflow's local (sqlite) registry look
    the model up through the process-wide tracking URI.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code not in map(ErrorCode.Name, (RESOURCE_ALREADY_EXISTS, ALREADY_EXISTS)):
            raise
    source = client.get_logged_model(model_id).artifact_location
    return client.create_model_version(name, source, run_id=run_id, model_id=model_id)


def promote(
    experiment: str,
    metric: str = "train/best_val_loss",
    mode: str | None = None,
    name: str | None = None,
    alias: str = "champion",
    uri: str | None = None,
    data_sha256: str | None = None,
    all_data: bool = False,
) -> Promotion:
    """Register the best run's model as a new version of ``name`` and point ``alias`` at it.

    If ``alias`` already points at a version of that run's model, nothing changes (running the
    command twice does not pile up identical versions). ``mode`` defaults to the direction the
    task specs declare for ``metric`` (losses: min). Everything goes through one client on
    ``uri``: MLflow's process-wide URIs are left as the caller had them.
    """
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    client = MlflowClient(uri, registry_uri=uri)
    mode = mode or ("max" if higher_is_better(metric) else "min")
    run, model_id, candidates, compared = best_run(
        client, experiment, metric, mode, data_sha256, all_data
    )
    name = name or experiment
    version = _aliased_version(client, name, alias)
    if version is None or version.run_id != run.info.run_id:
        version = _register(client, name, run.info.run_id, model_id)
        client.set_registered_model_alias(name, alias, version.version)
    return Promotion(
        name=name,
        version=str(version.version),
        alias=alias,
        run_id=run.info.run_id,
        metric=metric,
        value=float(run.data.metrics[metric]),
        candidates=candidates,
        compared=compared,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rnnlab.registry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("promote", help="register the best run and set an alias on it")
    cmd.add_argument("--experiment", default="rnnlab-forecast")
    cmd.add_argument("--metric", default="train/best_val_loss", help="a validation metric")
    cmd.add_argument("--mode", choices=MODES, help="default: the metric's declared direction")
    cmd.add_argument("--name", default=None, help="registered model name (default: experiment)")
    cmd.add_argument("--alias", default="champion")
    scope = cmd.add_mutually_exclusive_group()
    scope.add_argument(
        "--data-sha256", help="compare runs on this dataset (default: the latest run's)"
    )
    scope.add_argument("--all-data", action="store_true", help="compare runs on any dataset")
    args = parser.parse_args(argv)
    with user_errors_exit():
        done = promote(
            args.experiment,
            args.metric,
            args.mode,
            args.name,
            args.alias,
            data_sha256=args.data_sha256,
            all_data=args.all_data,
        )
    print(done.describe())


if __name__ == "__main__":
    main()
