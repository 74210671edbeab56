"""Batch prediction streams files through the task's ``predict_frame`` with the input's ids:
forecasts per series, text rows and lines, whole labelled sequences."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab.errors import DataError
from rnnlab.model_store import load_trained
from rnnlab.predict import predict_file
from rnnlab.tasks import get_task
from sentiment_corpus import make_corpus

REPO = Path(__file__).resolve().parents[1]
SMALL = ["task.lookback=24", "task.horizon=4"]


@pytest.fixture
def trained(untrained_model_dir):
    return load_trained(untrained_model_dir(SMALL))


@pytest.fixture
def co2(untrained_model_dir) -> pd.DataFrame:
    """The real weekly CO2 series (filled), as the prepare stage read it."""
    model_dir = untrained_model_dir(SMALL, name="co2")
    raw = pd.read_csv(model_dir.parent / "data" / "raw" / "co2.csv")
    raw["co2"] = raw["co2"].interpolate()
    return raw


def _three_series(co2: pd.DataFrame) -> pd.DataFrame:
    parts = [
        co2.iloc[start : start + length].assign(series=name)
        for name, start, length in (("north", 0, 30), ("south", 500, 90), ("east", 1500, 24))
    ]
    return pd.concat(parts)[["series", "date", "co2"]]


def test_one_forecast_per_series_streamed_across_chunk_boundaries(trained, co2, tmp_path: Path):
    table = _three_series(co2)
    source, target = tmp_path / "history.csv", tmp_path / "out" / "forecasts.csv"
    table.to_csv(source, index=False)

    rows = predict_file(trained, source, target, group_column="series", chunksize=7)

    out = pd.read_csv(target)
    assert rows == len(out) == 3 * 4
    assert list(out.columns) == ["series", "step", "co2"]
    assert list(out["series"].unique()) == ["north", "south", "east"]  # input order kept
    task = get_task("forecast")
    for name, group in table.groupby("series", sort=False):
        expected = task.predict_frame(trained, group)
        np.testing.assert_allclose(out.loc[out["series"] == name, "co2"], expected["co2"])


def test_a_file_without_groups_is_one_series(trained, co2, tmp_path: Path):
    source, target = tmp_path / "co2.csv", tmp_path / "forecast.csv"
    co2.to_csv(source, index=False)
    predict_file(trained, source, target, chunksize=100)
    expected = get_task("forecast").predict_frame(trained, co2)
    pd.testing.assert_frame_equal(pd.read_csv(target), expected, check_dtype=False)


def test_bad_input_names_the_series_and_leaves_no_output(trained, co2, tmp_path: Path):
    table = _three_series(co2)
    source, target = tmp_path / "history.csv", tmp_path / "forecasts.csv"
    table[table["series"] != "east"].assign(series="north").iloc[:10].to_csv(source, index=False)
    with pytest.raises(DataError, match=r"series='north': Input has 10 rows.*last 24"):
        predict_file(trained, source, target, group_column="series")
    assert not [p.name for p in tmp_path.iterdir() if "forecasts" in p.name]  # no temp file

    pd.concat([table, table.iloc[:30]]).to_csv(source, index=False)  # "north" comes back
    with pytest.raises(DataError, match=r"not contiguous.*sort the file by 'series'"):
        predict_file(trained, source, target, group_column="series", chunksize=50)
    with pytest.raises(DataError, match="'region' is not a column"):
        predict_file(trained, source, target, group_column="region")


@pytest.mark.slow
def test_cli_reports_errors_without_traceback(trained, co2, tmp_path: Path, untrained_model_dir):
    model_dir = untrained_model_dir(SMALL, name="cli")
    source, target = tmp_path / "history.csv", tmp_path / "forecasts.csv"
    _three_series(co2).to_csv(source, index=False)
    cmd = [sys.executable, "-m", "rnnlab.predict", "--model", str(model_dir), "--input"]
    done = subprocess.run(
        [*cmd, str(source), "--output", str(target), "--group-column", "series"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 12 prediction row(s)" in done.stdout and len(pd.read_csv(target)) == 12
    missing = subprocess.run(
        [*cmd, str(tmp_path / "nope.csv"), "--output", str(target)], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "nope.csv does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.fixture
def text_classifier(untrained_model_dir, tmp_path: Path):
    """A text classifier (untrained weights) prepared from the generated sentiment corpus."""
    corpus = tmp_path / "corpus.csv"
    make_corpus(120, seed=3).to_csv(corpus, index=False)
    overrides = ["task=classify", "data=text"]
    return load_trained(untrained_model_dir(overrides, "text", data={"path": str(corpus)}))


def test_text_rows_are_chunked_keep_their_ids_and_match_the_model(text_classifier, tmp_path):
    source, target = tmp_path / "reviews.csv", tmp_path / "labels.csv"
    texts = make_corpus(25, seed=8)["text"]
    pd.DataFrame({"review_id": range(100, 125), "text": texts}).to_csv(source, index=False)
    predict_file(text_classifier, source, target, id_columns=["review_id"], chunksize=4)
    out = pd.read_csv(target)
    expected = get_task("classify").predict_frame(text_classifier, pd.DataFrame({"text": texts}))
    assert out["review_id"].tolist() == list(range(100, 125))
    pd.testing.assert_frame_equal(out.drop(columns="review_id"), expected, check_dtype=False)


def test_text_files_are_one_string_per_line(text_classifier, tmp_path: Path):
    source, target = tmp_path / "reviews.txt", tmp_path / "labels.csv"
    lines = ["a great film", "dull", "quoted, with a comma"]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    predict_file(text_classifier, source, target, chunksize=2)
    out = pd.read_csv(target)
    expected = get_task("classify").predict_frame(text_classifier, pd.DataFrame({"text": lines}))
    assert out["line"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(out.drop(columns="line"), expected, check_dtype=False)


def test_sequences_are_batched_whole_and_match_the_model(untrained_model_dir, tmp_path: Path):
    trained = load_trained(untrained_model_dir(["task=classify", "data=sequences_csv"], "seq"))
    example = pd.read_csv(REPO / "data/external/sequences_example.csv").drop(columns="label")
    first = example[example["sequence_id"].isin(example["sequence_id"].unique()[:6])]
    source, target = tmp_path / "sequences.csv", tmp_path / "labels.csv"
    first.to_csv(source, index=False)
    # Sequences of 13-35 rows in chunks of 7: every one spans several chunks.
    predict_file(trained, source, target, group_column="sequence_id", chunksize=7)
    expected = get_task("classify").predict_frame(trained, first)
    pd.testing.assert_frame_equal(pd.read_csv(target), expected, check_dtype=False)
