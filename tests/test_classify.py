"""Classification models end to end: padding invariance, every variant, MLflow, the front doors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from rnnlab.data.classify import load_prepared
from rnnlab.io import read_json
from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from rnnlab.tasks import get_task
from rnnlab.tasks.classify_metrics import TFIDF_C
from sentiment_corpus import make_corpus

VARIANTS = ["rnn", "rnn_relu", "lstm", "gru", "bilstm", "bigru", "lstm_attn", "mlp", "transformer"]
SEQUENCE_META = {"kind": "sequences", "n_features": 12, "classes": [str(k) for k in range(9)]}
TEXT_META = {"kind": "text", "n_tokens": 40, "classes": ["negative", "positive"]}


@pytest.fixture(scope="session")
def classify_cfg(compose_cfg):
    """``classify_cfg("model=gru", ..., path=...)``: a task=classify config, ``data.*`` keywords."""
    return lambda *overrides, **data: compose_cfg(["task=classify", *overrides], data=data)


def _model(classify_cfg, arch: str, meta: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    data = "data=text" if meta["kind"] == "text" else "data=japanese_vowels"
    return get_task("classify").build_model(classify_cfg(f"model={arch}", data), meta).eval()


def _batch(meta: dict, lengths: list[int], steps: int, seed: int = 0) -> torch.Tensor:
    """Random inputs whose padding (beyond each length) is garbage, not zeros."""
    g = torch.Generator().manual_seed(seed)
    if meta["kind"] == "text":
        return torch.randint(1, meta["n_tokens"], (len(lengths), steps), generator=g)
    return torch.randn(len(lengths), steps, meta["n_features"], generator=g)


@pytest.mark.parametrize("meta", [SEQUENCE_META, TEXT_META], ids=["sequences", "text"])
@pytest.mark.parametrize("arch", VARIANTS)
def test_padding_never_changes_a_prediction(classify_cfg, arch: str, meta: dict) -> None:
    model = _model(classify_cfg, arch, meta)
    lengths = [7, 29, 12]
    short = _batch(meta, lengths, 29)
    long = torch.cat([short, _batch(meta, lengths, 11, seed=1)], dim=1)  # padded to 40 steps
    long[:, :29] = short
    for i, n in enumerate(lengths):  # different garbage beyond each length
        long[i, n:] = _batch(meta, [1], 40 - n, seed=2 + i)[0]
    with torch.no_grad():
        padded_29 = model(short, torch.tensor(lengths))
        padded_40 = model(long, torch.tensor(lengths))
        alone = torch.cat([model(short[i : i + 1, :n]) for i, n in enumerate(lengths)])
    torch.testing.assert_close(padded_29, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(padded_40, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", VARIANTS)
def test_every_variant_fits_a_vowel_shaped_batch(classify_cfg, arch: str) -> None:
    """12 channels, lengths 7-29, 9 classes: a few optimiser steps must cut the loss."""
    model, task = _model(classify_cfg, arch, SEQUENCE_META).train(), get_task("classify")
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(7, 30, (32,), generator=g)
    batch = {
        "x": torch.randn(32, 29, 12, generator=g),
        "lengths": lengths,
        "y": torch.arange(32) % 9,
    }
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = task.loss(model(batch["x"], batch["lengths"]), batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses


def test_sentiment_is_learned_well_above_the_baselines(tmp_path: Path, classify_cfg) -> None:
    make_corpus(360, seed=11).to_csv(tmp_path / "reviews.csv", index=False)
    cfg = classify_cfg(
        "data=text",
        "model=gru",
        "model.num_layers=1",
        "model.hidden_size=32",
        "trainer.max_epochs=20",
        "trainer.batch_size=32",
        "logger=none",
        path=str(tmp_path / "reviews.csv"),
    )
    result = run_pipeline(cfg, RunPaths(tmp_path / "job"))
    test = result["evaluate"]["test"]
    assert test["majority"]["accuracy"] < 0.6
    assert test["model"]["accuracy"] >= 0.9
    assert test["model"]["accuracy"] >= test["majority"]["accuracy"] + 0.35
    # Bag of words cannot see "not" flip the verdict; the recurrent model can.
    assert test["model"]["accuracy"] > test["logistic"]["accuracy"]
    # ... and neither can unigrams; TF-IDF bigrams see "not great", so they are the hard bar.
    assert test["tfidf"]["accuracy"] > test["logistic"]["accuracy"] + 0.1
    assert test["tfidf_c"] in TFIDF_C

    # Raw strings in (what the logged model's predict calls), labels and probabilities out.
    raw = pd.DataFrame({"text": ["the film was great .", "the film was not great .", "Dull!"]})
    out = get_task("classify").predict_frame(load_trained(tmp_path / "job/models"), raw)
    assert list(out["label"]) == ["positive", "negative", "negative"]
    np.testing.assert_allclose(out[["prob_negative", "prob_positive"]].sum(axis=1), 1.0)


@pytest.mark.slow
def test_bigru_reaches_the_published_level_on_japanese_vowels(tmp_path: Path, classify_cfg) -> None:
    """The best variant of docs/benchmarks.md (published: 1-NN DTW ~0.95, ROCKET ~0.96)."""
    cfg = classify_cfg("data=japanese_vowels", "model=bigru", "logger=none")
    result = run_pipeline(cfg, RunPaths(tmp_path / "job"))
    assert result["evaluate"]["test"]["model"]["accuracy"] >= 0.97


@pytest.mark.slow
def test_default_classify_config_on_japanese_vowels(tmp_path: Path, classify_cfg) -> None:
    """The default (2x64 bidirectional GRU, cosine schedule, chosen at a fixed budget in
    docs/benchmarks.md: 0.987 there) reaches the best variants' level."""
    cfg = classify_cfg("data=japanese_vowels", "logger=none")
    result = run_pipeline(cfg, RunPaths(tmp_path / "job"))
    assert result["evaluate"]["test"]["model"]["accuracy"] >= 0.97


@pytest.mark.slow
def test_vowels_pipeline_writes_and_logs_metrics_and_the_confusion_matrix(
    tmp_path: Path, tracking: str, classify_cfg
) -> None:
    # Four epochs of 4 batches: with the default cosine schedule two learned too little to tell.
    cfg = classify_cfg("data=japanese_vowels", "experiment=quick", "trainer.max_epochs=4")
    job = RunPaths(tmp_path / "job")
    result = run_pipeline(cfg, job)

    metrics = read_json(job.metrics_dir / "test.json")["test"]
    for name in ("model", "majority", "logistic"):
        assert "macro_f1" in metrics[name]
    assert metrics["logistic"]["accuracy"] > 0.9
    assert metrics["majority"]["accuracy"] < 0.1
    # Four epochs already learn something: measured 0.232 against 0.084.
    assert metrics["model"]["accuracy"] > 2 * metrics["majority"]["accuracy"]
    assert set(metrics["per_class"]) == {str(k) for k in range(1, 10)}
    confusion = pd.read_csv(job.plots_dir / "evaluate/confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == 370
    accuracy = (confusion.actual == confusion.predicted).mean()
    assert np.isclose(accuracy, metrics["model"]["accuracy"])

    # The validation accuracy of the kept model is recorded, and is what it scores on val.
    trained, (_, splits) = load_trained(job.model_dir), load_prepared(job.prepared_dir)
    with torch.no_grad():
        val = splits["val"]
        logits = trained.model.eval()(torch.from_numpy(val["x"]), torch.from_numpy(val["lengths"]))
    val_accuracy = float((logits.argmax(-1).numpy() == val["y"]).mean())
    recorded = read_json(job.metrics_dir / "train.json")["best_val_accuracy"]
    assert recorded == pytest.approx(val_accuracy, abs=1e-6)
    assert "val_accuracy" in pd.read_csv(job.plots_dir / "learning_curve.csv").columns

    run_id = result["train"]["mlflow_run_id"]
    client = MlflowClient(tracking)
    run = client.get_run(run_id)
    assert run.data.metrics["test/logistic/accuracy"] == metrics["logistic"]["accuracy"]
    assert run.data.metrics["train/best_val_accuracy"] == pytest.approx(val_accuracy, abs=1e-6)
    assert "val/accuracy" in run.data.metrics
    assert "test/per_class/3/recall" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run_id, "plots")} >= {
        "plots/confusion.png",
        "plots/confusion.csv",
    }


EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "data/external/sequences_example.csv"


def _train_on_the_example_csv(tmp_path: Path, classify_cfg, *overrides: str) -> tuple:
    """A 1-layer GRU trained on the shipped long-format example: (its job paths, the result)."""
    cfg = classify_cfg(
        "data=sequences_csv",
        "model=gru",
        "model.num_layers=1",
        "trainer.max_epochs=15",
        "trainer.batch_size=16",
        *overrides,
        path=str(EXAMPLE_CSV),
    )
    job = RunPaths(tmp_path / "job")
    return job, run_pipeline(cfg, job)


def test_user_long_csv_pipeline_and_the_logged_model_takes_raw_long_format(
    tmp_path: Path, tracking: str, classify_cfg
) -> None:
    job, result = _train_on_the_example_csv(tmp_path, classify_cfg)
    assert result["prepare"] == {"classes": 3, "train": 42, "val": 6, "test": 12}
    assert result["evaluate"]["test"]["model"]["accuracy"] >= 0.9
    raw = pd.read_csv(EXAMPLE_CSV)
    assert pd.read_csv(job.raw_dir / "train.csv").equals(raw)

    # The logged model takes the long format as a user has it, rows in any order.
    _, splits = load_prepared(job.prepared_dir)
    test_ids = list(splits["test"]["ids"])
    rows = raw[raw["sequence_id"].isin(test_ids)].drop(columns="label")
    shuffled = rows.sample(frac=1.0, random_state=0)
    run_id = result["train"]["mlflow_run_id"]
    out = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(shuffled)
    trained = load_trained(job.model_dir)
    pd.testing.assert_frame_equal(out, get_task("classify").predict_frame(trained, shuffled))
    confusion = pd.read_csv(job.plots_dir / "evaluate/confusion.csv")
    assert list(out.set_index("sequence_id").loc[test_ids, "label"]) == list(confusion.predicted)
    with pytest.raises(ValueError, match=r"lacks channel column\(s\) \['accel_y'\]"):
        get_task("classify").predict_frame(trained, rows.drop(columns="accel_y"))


@pytest.mark.slow
def test_logged_text_model_takes_raw_strings(tmp_path: Path, tracking: str, classify_cfg) -> None:
    make_corpus(300, seed=5).to_json(tmp_path / "reviews.jsonl", orient="records", lines=True)
    cfg = classify_cfg(
        "data=text",
        "data.level=char",
        "model=gru",
        "model.num_layers=1",
        "trainer.max_epochs=3",
        path=str(tmp_path / "reviews.jsonl"),
    )
    job = RunPaths(tmp_path / "job")
    result = run_pipeline(cfg, job)
    raw = pd.DataFrame({"text": ["the film was great .", "Not good at all", "é, 🙂"]})
    out = mlflow.pyfunc.load_model(f"runs:/{result['train']['mlflow_run_id']}/model").predict(raw)
    expected = get_task("classify").predict_frame(load_trained(job.model_dir), raw)
    pd.testing.assert_frame_equal(out, expected)
    assert list(out.columns) == ["label", "prob_negative", "prob_positive"] and len(out) == 3


def test_an_ensemble_trains_each_member_on_its_own_loss_and_averages_probabilities(
    classify_cfg,
) -> None:
    torch.manual_seed(0)
    cfg = classify_cfg("model=gru", "data=japanese_vowels", "task.ensemble=3")
    task = get_task("classify")
    model = task.build_model(cfg, SEQUENCE_META)
    x, lengths = _batch(SEQUENCE_META, [7, 29, 12], 29), torch.tensor([7, 29, 12])
    batch = {"x": x, "lengths": lengths, "y": torch.tensor([0, 4, 8])}
    members = model(x, lengths)  # training mode: every member's logits
    assert members.shape == (3, 3, 9)
    own = [torch.nn.functional.cross_entropy(m, batch["y"]) for m in members]
    torch.testing.assert_close(task.loss(members, batch), torch.stack(own).mean())
    with torch.no_grad():
        each = torch.stack([member(x, lengths) for member in model.eval().members])
        combined = model(x, lengths)
    assert not torch.allclose(each[0], each[1])  # members start apart
    torch.testing.assert_close(combined.exp(), torch.softmax(each, dim=-1).mean(dim=0))


def test_a_trained_ensemble_is_logged_and_reloaded_with_its_averaged_probabilities(
    tmp_path: Path, tracking: str, classify_cfg
) -> None:
    job, result = _train_on_the_example_csv(tmp_path, classify_cfg, "task.ensemble=3")
    assert result["evaluate"]["test"]["model"]["accuracy"] >= 0.9
    rows = pd.read_csv(EXAMPLE_CSV).drop(columns="label")
    trained = load_trained(job.model_dir)
    out = get_task("classify").predict_frame(trained, rows)
    logged = mlflow.pyfunc.load_model(f"runs:/{result['train']['mlflow_run_id']}/model")
    pd.testing.assert_frame_equal(logged.predict(rows), out)
    # The probabilities are the mean of the three reloaded members' own.
    each = [
        get_task("classify").predict_frame(replace(trained, model=member), rows)
        for member in trained.model.members
    ]
    assert len(each) == 3
    mean = np.mean([e.filter(like="prob_").to_numpy() for e in each], axis=0)
    np.testing.assert_allclose(out.filter(like="prob_").to_numpy(), mean, atol=1e-6)
