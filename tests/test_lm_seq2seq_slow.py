"""Slow: `dvc exp run -S task=lm` on a repository copy, and date normalisation learnt for real."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from test_dvc_pipeline import _sh, repo_copy  # noqa: F401  (the fixture: a committed copy)

pytestmark = pytest.mark.slow


def test_dvc_exp_run_trains_a_char_lm_and_logs_samples(repo_copy: Path) -> None:  # noqa: F811
    settings = [
        "task=lm",
        "data=pydoc_topics",
        "data.max_chars=40000",
        "model=gru",
        "model.hidden_size=32",
        "trainer=fast",
        "trainer.batch_size=16",
        "task.bptt=32",
        "evaluate.sample_length=40",
    ]
    _sh(["dvc", "exp", "run", *(arg for s in settings for arg in ("-S", s))], repo_copy)
    metrics = json.loads((repo_copy / "metrics/test.json").read_text())["test"]
    assert metrics["model"]["bpc"] < metrics["unigram"]["bpc"]
    assert len((repo_copy / "data/raw/corpus.txt").read_text(encoding="utf-8")) == 40000
    assert "name: lm" in (repo_copy / "models/config.yaml").read_text()

    client = MlflowClient(f"sqlite:///{repo_copy / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnlab-lm")
    (run,) = client.search_runs([experiment.experiment_id])
    assert {"test/model/bpc", "test/bigram/bpc", "val/model/perplexity"} <= set(run.data.metrics)
    texts = [a.path for a in client.list_artifacts(run.info.run_id, "texts")]
    assert texts == ["texts/lm_samples.txt"]

    generated = _sh(
        [
            "python",
            "-m",
            "rnnlab.generate",
            "--model",
            f"runs:/{run.info.run_id}/model",
            "--prompt",
            "def ",
            "--length",
            "30",
            "--seed",
            "1",
        ],
        repo_copy,
    )
    assert generated.stdout.startswith("def ") and len(generated.stdout.rstrip("\n")) == 34


def test_date_normalisation_with_attention_reaches_high_exact_match(
    tmp_path: Path, tracking: str, compose_cfg
) -> None:
    cfg = compose_cfg(
        [
            "task=seq2seq",
            "data=dates",
            "data.n_train=6000",
            "data.n_val=300",
            "data.n_test=500",
            "model=gru",
            "model.num_layers=1",
            "trainer.max_epochs=6",
            "trainer.grad_flow_batches=0",
        ]
    )
    result = run_pipeline(cfg, RunPaths(tmp_path / "job"))
    test = result["evaluate"]["test"]["model"]
    assert test["exact_match"] >= 0.95, test
    assert test["bleu"] > 95
    assert (tmp_path / "job/plots/evaluate/seq2seq_attention.png").stat().st_size > 10_000
    run_id = result["train"]["mlflow_run_id"]
    mlflow.set_tracking_uri(tracking)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    out = model.predict(pd.DataFrame({"source": ["Wednesday, March 3, 2021"]}))
    assert out["prediction"][0] == "2021-03-03"
