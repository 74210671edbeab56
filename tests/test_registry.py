"""Promotion picks the best evaluated run, registers its model and points the alias at it."""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from rnnlab.errors import ConfigError, DataError
from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.predict import load_model
from rnnlab.pyfunc import log_pyfunc
from rnnlab.registry import main, promote
from rnnlab.tasks import get_task
from rnnlab.tracking import ensure_experiment

EXPERIMENT = "rnnlab-forecast"


@pytest.fixture
def experiment(tracking: str, untrained_model_dir) -> dict[str, str]:
    """Runs as training leaves them: name -> run id, with or without model and test metrics."""
    model_dir = untrained_model_dir(["task.lookback=24", "task.horizon=4"])
    # The winner's model differs from the others', so loading "the champion" can be told apart.
    best_dir = untrained_model_dir(["task.lookback=24", "task.horizon=4", "model=gru"], "best")
    trained = load_trained(best_dir)
    example = get_task("forecast").example_frame(trained.cfg, RunPaths(best_dir.parent))
    client = MlflowClient(tracking)
    experiment_id = ensure_experiment(tracking, EXPERIMENT)
    runs = {}
    for name, val_loss, test, model, status in (
        ("fair", 0.5, True, True, "FINISHED"),
        ("best", 0.2, True, True, "FINISHED"),
        ("untested", 0.1, False, True, "FINISHED"),  # train ran, evaluate did not
        ("modelless", 0.05, True, False, "FINISHED"),  # logger.log_model=false
        ("failed", 0.01, True, False, "FAILED"),
    ):
        run_id = client.create_run(experiment_id, run_name=name).info.run_id
        metrics = {"train/best_val_loss": val_loss, **({"test/model/mase": 1.0} if test else {})}
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        if model:
            log_pyfunc(tracking, run_id, best_dir if name == "best" else model_dir, example)
        client.set_terminated(run_id, status=status)
        runs[name] = run_id
    return {**runs, "example": example, "trained": trained}


@pytest.mark.slow
def test_promote_registers_the_best_evaluated_run_under_the_alias(
    tracking: str, experiment, capsys, tmp_path
):
    main(["promote", "--experiment", EXPERIMENT])
    assert f"run {experiment['best']}" in capsys.readouterr().out
    # The process's MLflow settings are left alone: a client of another store reads its own
    # registry, not the one promote just wrote to.
    assert MlflowClient(f"sqlite:///{tmp_path / 'elsewhere.db'}").search_registered_models() == []

    client = MlflowClient(tracking)
    version = client.get_model_version_by_alias(EXPERIMENT, "champion")
    assert (version.run_id, str(version.version)) == (experiment["best"], "1")
    mlflow.set_tracking_uri(tracking)
    served = mlflow.pyfunc.load_model(f"models:/{EXPERIMENT}@champion")
    expected = get_task("forecast").predict_frame(experiment["trained"], experiment["example"])
    np.testing.assert_allclose(served.predict(experiment["example"])["co2"], expected["co2"])
    # Batch prediction fetches the same model by its registry URI, weights only.
    fetched = load_model(f"models:/{EXPERIMENT}@champion")
    assert fetched.cfg.model.name == "gru"

    again = promote(EXPERIMENT)  # the same winner: no duplicate version
    assert (again.run_id, again.version) == (experiment["best"], "1")
    # Another metric direction moves the alias to a new version of the other run.
    done = promote(EXPERIMENT, mode="max", alias="champion")
    assert (done.run_id, done.version, done.candidates) == (experiment["fair"], "2", 2), done
    assert client.get_model_version_by_alias(EXPERIMENT, "champion").run_id == experiment["fair"]


def test_promote_explains_why_nothing_qualifies(tracking: str):
    ensure_experiment(tracking, EXPERIMENT)
    with pytest.raises(ConfigError, match=r"No FINISHED run .* has metric 'val/mae'"):
        promote(EXPERIMENT, metric="val/mae")
    with pytest.raises(ConfigError, match="No MLflow experiment 'elsewhere'"):
        promote("elsewhere")
    with pytest.raises(DataError, match="Cannot fetch model 'models:/unknown@champion'"):
        load_model("models:/unknown@champion")


def test_promote_compares_runs_of_one_task_and_dataset(tracking: str, monkeypatch):
    """Runs trained on another CSV (another data hash) or task never compete."""
    from rnnlab import registry

    client = MlflowClient(tracking)
    experiment_id = ensure_experiment(tracking, EXPERIMENT)
    ids = {}
    for name, task, data, loss in (
        ("co2-good", "forecast", "aaa", 0.3),
        ("co2-best", "forecast", "aaa", 0.2),
        ("other-csv", "forecast", "bbb", 0.01),  # better, but on other data
        ("co2-latest", "forecast", "aaa", 0.4),
    ):
        tags = {"task": task, "data_sha256": data, "dataset": name.split("-")[0]}
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        metrics = [Metric("train/best_val_loss", loss, 0, 0), Metric("test/model/mase", 1, 0, 0)]
        client.log_batch(run_id, metrics=metrics)
        client.set_terminated(run_id)
        ids[name] = run_id
        time.sleep(0.01)
    monkeypatch.setattr(
        registry, "_logged_models", lambda c, e: {r: f"m-{r}" for r in ids.values()}
    )

    run, _, candidates, compared = registry.best_run(
        client, EXPERIMENT, "train/best_val_loss", "min"
    )
    assert (run.info.run_id, candidates) == (ids["co2-best"], 3)
    assert compared.startswith("task forecast on dataset co2 (data sha256 aaa)")
    run, _, candidates, _ = registry.best_run(
        client, EXPERIMENT, "train/best_val_loss", "min", data_sha256="bbb"
    )
    assert (run.info.run_id, candidates) == (ids["other-csv"], 1)
    run, _, candidates, compared = registry.best_run(
        client, EXPERIMENT, "train/best_val_loss", "min", all_data=True
    )
    assert (run.info.run_id, candidates) == (ids["other-csv"], 4)
    assert "every task and dataset" in compared
    with pytest.raises(ConfigError, match=r"No evaluated run .* data 'ccc'"):
        registry.best_run(client, EXPERIMENT, "train/best_val_loss", "min", data_sha256="ccc")
