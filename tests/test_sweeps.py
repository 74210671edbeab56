"""Sweeps (parallel jobs, parent/child runs, failing jobs) and comparison reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from rnnlab import report
from rnnlab.errors import ConfigError
from rnnlab.hydra_callbacks import MlflowSetup
from rnnlab.tracking import KIND_TAG, ensure_experiment, start_sweep_run

REPO = Path(__file__).resolve().parents[1]


def _fake_training(client: MlflowClient, exp_id: str, parent: str, **values) -> str:
    """A run shaped like a real training: task tag, flattened params, train/test metrics."""
    tags = {"task": "longrange", "mlflow.parentRunId": parent}
    run_id = client.create_run(exp_id, tags=tags).info.run_id
    params = {k.replace("__", "."): v for k, v in values.items() if not isinstance(v, float)}
    metrics = {k.replace("__", "/"): v for k, v in values.items() if isinstance(v, float)}
    client.log_batch(
        run_id,
        params=[Param(k, str(v)) for k, v in params.items()],
        metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
    )
    client.set_terminated(run_id)
    return run_id


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A finished fake study sweep: tanh RNN fails at T=200, LSTM solves it; plus a stray run."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('study') / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp_id = ensure_experiment(uri, "study")
    parent = start_sweep_run(uri, exp_id, "s1", "model=rnn,lstm")
    for cell, mse, n_params in (("rnn", 0.165, 4417), ("lstm", 0.0021, 17473)):
        _fake_training(
            client,
            exp_id,
            parent,
            model__name=cell,
            model__init="orthogonal" if cell == "rnn" else "chrono",
            data__seq_len=200,
            trainer__gradient_clip_val="1.0",
            n_parameters=n_params,
            test__model__mse=mse,
            test__baseline__mse=1 / 6,
            train__best_val_loss=mse,
            train__train_seconds=12.0,
            train__epochs=3.0,
        )
    _fake_training(client, exp_id, "", model__name="gru", test__model__mse=0.5)  # other sweep
    return uri, parent


def test_report_ranks_a_sweep_and_logs_back(study, tmp_path: Path) -> None:
    uri, parent = study
    result = report.build_report(
        "study", tmp_path / "out", parent_run="latest", study=True, tracking_uri=uri
    )
    assert result["metric"] == "test/model/mse" and result["runs"] == 2
    md = (tmp_path / "out" / f"study-{parent[:8]}.md").read_text()
    board = md.split("## Leaderboard")[1]
    assert board.index("model.name=lstm") < board.index("model.name=rnn")  # best first
    assert "17473" in board and "gru" not in board  # params; the other sweep's run left out
    assert "model.init" not in board  # implied by model.name, so not part of the variant
    assert "0.0021 ✓" in md and "0.1650 ✗" in md  # solved / not solved against 1/6
    html = (tmp_path / "out" / f"study-{parent[:8]}.html").read_text()
    assert "data:image/png;base64," in html
    logged = {a.path for a in MlflowClient(uri).list_artifacts(parent, "report")}
    assert {f"report/study-{parent[:8]}.md", f"report/study-{parent[:8]}.png"} <= logged


def test_report_of_a_whole_experiment_gets_its_own_run(study, tmp_path: Path) -> None:
    uri, _ = study
    result = report.build_report("study", tmp_path, tracking_uri=uri)
    assert result["runs"] == 3  # both sweeps' trainings, not the sweep parent
    run = MlflowClient(uri).get_run(result["run_id"])
    assert run.info.run_name == "report" and run.data.tags[KIND_TAG] == "report"


def test_report_names_what_is_missing(study, tmp_path: Path) -> None:
    uri, _ = study
    with pytest.raises(ConfigError, match="No MLflow experiment 'nope'"):
        report.build_report("nope", tmp_path, tracking_uri=uri)
    with pytest.raises(ConfigError, match="test metrics here"):
        report.build_report("study", tmp_path, metric="test/model/mase", tracking_uri=uri)


def test_sweep_end_report_failure_only_warns(
    study, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri, parent = study
    MlflowSetup("study")._write_report(uri, "study", parent, tmp_path / "ok")
    assert (
        "## Which settings solve the task"
        in (tmp_path / "ok" / f"study-{parent[:8]}.md").read_text()
    )
    MlflowSetup("leaderboard")._write_report(uri, "no-such-experiment", parent, tmp_path / "bad")
    assert "No sweep report" in caplog.text and "python -m rnnlab.report" in caplog.text
    with pytest.raises(ValueError, match="leaderboard"):
        MlflowSetup("table")


def _sweep(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable,
        "-m",
        "rnnlab.app",
        "-m",
        "experiment=parallel",
        "data=sunspots",
        "task.lookback=22",
        "task.horizon=4",
        "trainer.max_epochs=1",
        "model.hidden_size=8",
        "logger.log_model=false",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        *overrides,
    ]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_parallel_sweep_keeps_every_run_and_survives_a_failing_job(tmp_path: Path) -> None:
    # On a fresh database: 3 good jobs and one that crashes inside torch (16 % 3 != 0).
    # trainer.num_threads=null: one per core, shared out between the parallel jobs
    done = _sweep(
        tmp_path,
        "++model.num_heads=3",
        "trainer.num_threads=null",
        "model=rnn,lstm,gru,transformer",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 sweep job(s) failed" in done.stdout + done.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    runs = client.search_runs([experiment.experiment_id])
    trainings = [r for r in runs if "task" in r.data.tags]
    (parent,) = [r for r in runs if r.data.tags.get(KIND_TAG) == "sweep"]
    assert sorted(r.data.tags["model"] for r in trainings) == ["gru", "lstm", "rnn"]
    assert all(r.info.status == "FINISHED" for r in trainings)
    # Two jobs on this machine's cores: each gets its share of torch threads through the config.
    share = str(max(1, (os.cpu_count() or 1) // 2))
    assert {r.data.params["trainer.num_threads"] for r in trainings} == {share}
    assert {r.data.tags["mlflow.parentRunId"] for r in trainings} == {parent.info.run_id}
    assert all("test/model/mase" in r.data.metrics for r in trainings)
    assert parent.data.tags["failed_jobs"] == "1" and parent.info.status == "FINISHED"
    failed = (tmp_path / "multirun" / "3" / "FAILED.txt").read_text()
    assert "divisible by num_heads" in failed
    default = client.get_experiment_by_name("Default")
    assert default is None or not client.search_runs([default.experiment_id])
    frame = pd.DataFrame([r.data.metrics for r in trainings])
    assert frame["train/epochs"].eq(1).all()
    # The four jobs, two at a time, prepared the data once and shared it.
    assert len(list((tmp_path / "multirun" / "prepared_data").glob("*/data/prepared"))) == 1
    job_data = list((tmp_path / "multirun").glob("[0-9]/data"))
    assert job_data and all(d.is_symlink() for d in job_data)  # links to it, not copies
    # The sweep ends with its leaderboard, on disk and in the parent run.
    name = f"rnnlab-forecast-{parent.info.run_id[:8]}"
    board = (tmp_path / "multirun" / "report" / f"{name}.md").read_text()
    ranked = [line.split()[1] for line in board.splitlines() if line.startswith("| model.")]
    assert sorted(ranked) == ["model.name=gru", "model.name=lstm", "model.name=rnn"], board
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"report/{name}.md", f"report/{name}.png", f"report/{name}.html"} <= logged


def test_variant_names_only_the_settings_that_tell_runs_apart() -> None:
    params = pd.DataFrame(
        {
            "param:model.name": ["lstm", "lstm_chrono", "lstm", "lstm_chrono", "gru"],
            "param:model.init": ["orthogonal", "chrono", "orthogonal", "chrono", "orthogonal"],
            "param:data.seq_len": ["50", "50", "200", "200", "50"],
            "param:seed": ["1"] * 5,
        }
    )
    assert report._distinguishing(params) == ["param:model.name", "param:data.seq_len"]
    # A setting swept on its own (model.init crossed with model.name) stays.
    crossed = params.assign(**{"param:model.init": ["a", "b", "b", "a", "a"]})
    assert report._distinguishing(crossed) == [
        "param:model.name",
        "param:model.init",
        "param:data.seq_len",
    ]


def test_seq2seq_sweeps_rank_by_exact_match_best_first() -> None:
    runs = pd.DataFrame(
        {
            "param:task.attention": ["none", "additive"],
            "test/model/exact_match": [0.862, 1.0],
            "test/model/token_accuracy": [0.975, 1.0],
            "status": ["FINISHED"] * 2,
            "run_id": ["a", "b"],
            "run_name": ["a", "b"],
        }
    )
    metric = report.pick_metric(runs, None)
    assert metric == "test/model/exact_match"
    board = report.leaderboard(runs, metric)
    assert board["variant"].tolist() == ["task.attention=additive", "task.attention=none"]


def test_grad_flow_table_gives_the_fall_and_the_underflow_of_each_curve() -> None:
    run = {"param:model.name": "rnn", "param:data.seq_len": "4"}
    curves = [(run, {"start": pd.Series([1e-3, 1e-2, 1e-1, 1.0], index=[1, 2, 3, 4]),
                     "end": pd.Series([0.0, 0.0, 1e-5, 1e-1], index=[1, 2, 3, 4])})]  # fmt: skip
    table = report.grad_flow_table(curves).set_index("stage")
    assert table.loc["start", "orders of magnitude lost"] == pytest.approx(3.0)
    assert pd.isna(table.loc["start", "zero up to t"])
    assert table.loc["end", "zero up to t"] == 2
    assert table.loc["end", "orders of magnitude lost"] == float("inf")


def test_leaderboard_has_the_companion_metric_baselines_as_rows_and_a_telling_axis() -> None:
    runs = pd.DataFrame(
        {
            "task": ["classify"] * 2,
            "param:model.name": ["lstm", "gru"],
            "test/model/accuracy": [0.84, 0.88],
            "test/model/macro_f1": [0.83, 0.875],
            "test/tfidf/accuracy": [0.86, 0.86],
            "test/tfidf/macro_f1": [0.855, 0.855],
            "test/majority/accuracy": [0.3, 0.3],
            "test/per_class/pos/precision": [0.9, 0.9],
            "status": ["FINISHED"] * 2,
            "run_id": ["a", "b"],
            "run_name": ["a", "b"],
        }
    )
    metric = report.pick_metric(runs, None)
    board = report.leaderboard(runs, metric)
    assert board["variant"].tolist() == [
        "model.name=gru",
        "baseline: tfidf",
        "model.name=lstm",
        "baseline: majority",
    ]
    assert board["test/model/macro_f1"].tolist()[:3] == [0.875, 0.855, 0.83]
    assert board["status"].tolist()[1] == "baseline"
    chart = report.leaderboard_chart(board.iloc[:3], metric, "close values")
    low, _ = chart.axes[0].get_xlim()
    assert 0.8 < low < 0.84  # starts near the smallest value, not at 0
    wide = report.leaderboard_chart(board, metric, "with the majority class")
    assert wide.axes[0].get_xlim()[0] == 0.0


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ([], "segrnn-co2"),
        (
            ["model=gru", "model.hidden_size=128", "trainer.optimizer.lr=1e-3"],
            "gru-h128-lr1e-3-co2",
        ),
        (["experiment=quick", "seed=3", "trainer.num_threads=1"], "segrnn-h16-ep2-seed3-co2"),
        (["task=lm", "data=pydoc_topics", "task.bptt=64"], "lstm-bptt64-pydoc_topics"),
        (["task=lm", "data=pydoc_topics", "model.hidden_size=64"], "lstm-h64-pydoc_topics"),
        (["task=classify", "data=japanese_vowels"], "bigru-japanese_vowels"),
        (["task=classify", "data=japanese_vowels", "model=lstm"], "lstm-japanese_vowels"),
    ],
)
def test_run_names_carry_what_differs_from_the_defaults(compose_cfg, overrides, name) -> None:
    from rnnlab.tracking import run_name

    assert run_name(compose_cfg(overrides)) == name


@pytest.mark.slow
def test_an_interrupted_sweep_still_reports_the_jobs_that_finished(tmp_path: Path) -> None:
    """SIGTERM during the second of three jobs: the first is in the report, the parent KILLED."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "rnnlab.app", "-m", "data=sunspots", "task.lookback=22"]
    command += ["task.horizon=4", "trainer.max_epochs=1", "model.hidden_size=8"]
    command += ["trainer.num_threads=1", "logger.log_model=false", "model=rnn,lstm,gru"]
    command.append(f"hydra.sweep.dir={tmp_path / 'multirun'}")
    log_path = tmp_path / "sweep.log"
    with log_path.open("w") as log:
        sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 600
    while "best val/loss" not in log_path.read_text():  # the first job is done
        assert sweep.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.5)
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=300) == 143, log_path.read_text()[-3000:]

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get(KIND_TAG) == "sweep"]
    assert parent.info.status == "KILLED" and "interrupted" in parent.data.tags["rnnlab.note"]
    name = f"rnnlab-forecast-{parent.info.run_id[:8]}"
    board = (tmp_path / "multirun" / "report" / f"{name}.md").read_text()
    (first,) = [r for r in runs if r.data.tags.get("model") == "rnn"]
    assert first.info.status == "FINISHED" and first.info.run_id in board, board
    assert not [r for r in runs if r.data.tags.get("model") == "gru"]  # never started
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert f"report/{name}.md" in logged
    assert not [r for r in runs if r.info.status == "RUNNING"]
