"""Classification data: built-in sets, long-format CSVs and text files prepared for training.

Checks the split (stratified validation carved from train), that the scaler and vocabulary see
the training split only, and that each kind of bad input stops with a message naming the row
or column and the fix, leaving earlier outputs byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rnnlab import config
from rnnlab.data.classify import load_prepared, prepare, stratified_split
from rnnlab.data.text_tokens import Vocabulary, tokenize
from rnnlab.errors import ConfigError, DataError
from rnnlab.paths import RunPaths
from sentiment_corpus import make_corpus

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def classify_cfg(compose_cfg):
    """``classify_cfg("text", path=...)``: task=classify on a data config, ``data.*`` keywords."""
    return lambda data, **values: compose_cfg(["task=classify", f"data={data}"], data=values)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "data" in p.relative_to(root).parts
    }


def long_frame(n: int = 30, seed: int = 0, channels: int = 2) -> pd.DataFrame:
    """Three classes of variable-length sequences told apart by their mean level."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n):
        steps, label = int(rng.integers(4, 12)), ["a", "b", "c"][i % 3]
        values = rng.normal(["a", "b", "c"].index(label), 0.1, size=(steps, channels))
        part = pd.DataFrame(values, columns=[f"c{j}" for j in range(channels)])
        parts.append(part.assign(sequence_id=f"q{i}", step=np.arange(steps), label=label))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def vowels(tmp_path_factory: pytest.TempPathFactory, classify_cfg) -> RunPaths:
    paths = RunPaths(tmp_path_factory.mktemp("vowels"))
    prepare(classify_cfg("japanese_vowels"), paths)
    return paths


def test_japanese_vowels_keeps_its_split_and_writes_long_format_raw(vowels: RunPaths) -> None:
    meta, splits = load_prepared(vowels.prepared_dir)
    assert meta["classes"] == [str(k) for k in range(1, 10)]
    assert meta["n_features"] == 12
    assert len(splits["train"]["y"]) + len(splits["val"]["y"]) == 270
    assert len(splits["test"]["y"]) == 370
    assert splits["test"]["lengths"].min() == 7 and splits["test"]["lengths"].max() == 29
    raw = pd.read_csv(vowels.raw_dir / "test.csv")
    assert list(raw.columns[:2]) == ["sequence_id", "step"] and raw.columns[-1] == "label"
    assert raw["sequence_id"].nunique() == 370
    # Padding is zero beyond each sequence's length.
    x, lengths = splits["train"]["x"], splits["train"]["lengths"]
    beyond = np.arange(x.shape[1])[None, :] >= lengths[:, None]
    assert np.all(x[beyond] == 0)


def test_scaler_is_fitted_on_the_training_split_only(vowels: RunPaths) -> None:
    meta, splits = load_prepared(vowels.prepared_dir)
    raw = pd.read_csv(vowels.raw_dir / "train.csv")
    channels = meta["channels"]
    train_ids = set(splits["train"]["ids"])
    in_train = raw["sequence_id"].isin(train_ids)
    np.testing.assert_allclose(meta["scaler"]["loc"], raw.loc[in_train, channels].mean(), rtol=1e-9)
    # Including the validation sequences would give a different fit.
    assert not np.allclose(meta["scaler"]["loc"], raw[channels].mean(), rtol=1e-6, atol=0)
    # Scaled training steps are standardised; the validation ones only approximately.
    x, lengths = splits["train"]["x"], splits["train"]["lengths"]
    real = x[np.arange(x.shape[1])[None, :] < lengths[:, None]]  # (steps, C)
    np.testing.assert_allclose(real.mean(axis=0), 0, atol=1e-4)


def test_validation_is_stratified_and_carved_from_train(vowels: RunPaths) -> None:
    _, splits = load_prepared(vowels.prepared_dir)
    train, val = splits["train"]["y"], splits["val"]["y"]
    assert not set(splits["train"]["ids"]) & set(splits["val"]["ids"])
    assert all(i.startswith("train_") for i in splits["val"]["ids"])
    total = np.bincount(train, minlength=9) + np.bincount(val, minlength=9)
    np.testing.assert_array_equal(np.bincount(val, minlength=9), np.round(total * 0.15))


def test_stratified_split_never_takes_a_whole_class() -> None:
    labels = np.array(["a"] * 10 + ["b"] * 4 + ["c"])
    kept, held = stratified_split(labels, 0.5, seed=1)
    assert sorted([*kept, *held]) == list(range(15))
    assert list(labels[held]).count("a") == 5 and list(labels[held]).count("b") == 2
    assert "c" in labels[kept]


def test_user_long_csv_with_separate_test_file(tmp_path: Path, classify_cfg) -> None:
    long_frame(30).to_csv(tmp_path / "train.csv", index=False)
    long_frame(12, seed=1).to_csv(tmp_path / "test.csv", index=False)
    cfg = classify_cfg(
        "sequences_csv", path=str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.csv")
    )
    summary = prepare(cfg, RunPaths(tmp_path / "run"))
    assert summary == {"classes": 3, "train": 24, "val": 6, "test": 12}
    meta, _ = load_prepared(tmp_path / "run" / "data" / "prepared")
    assert meta["channels"] == ["c0", "c1"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("sequences_csv", {"classes": 3, "train": 42, "val": 6, "test": 12}),
        ("text", {"classes": 2, "train": 272, "val": 48, "test": 80}),
    ],
)
def test_shipped_example_files_prepare(
    tmp_path: Path, classify_cfg, data: str, expected: dict
) -> None:
    example = REPO / config.compose([f"data={data}"]).data.path
    assert prepare(classify_cfg(data, path=str(example)), RunPaths(tmp_path)) == expected


def test_text_vocabulary_sees_only_training_records(tmp_path: Path, classify_cfg) -> None:
    corpus = make_corpus(200, seed=3)
    corpus["text"] = corpus["text"] + [f" tok{i}" for i in range(len(corpus))]
    corpus.to_csv(tmp_path / "reviews.csv", index=False)
    cfg = classify_cfg("text", path=str(tmp_path / "reviews.csv"), min_freq=1)
    paths = RunPaths(tmp_path / "run")
    prepare(cfg, paths)
    meta, splits = load_prepared(paths.prepared_dir)
    vocab = set(meta["vocab"]["tokens"])
    for split in ("train", "val", "test"):
        records = [int(i.split()[-1]) - 1 for i in splits[split]["ids"]]
        seen = {f"tok{r}" in vocab for r in records}
        assert seen == {split == "train"}, split
    assert meta["vocab"]["tokens"][:2] == ["<pad>", "<unk>"]
    assert meta["classes"] == ["negative", "positive"]
    written = json.loads((paths.prepared_dir / "meta.json").read_text())
    assert written["vocab"]["level"] == "word"


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl"])
def test_text_reads_tsv_and_jsonl(tmp_path: Path, classify_cfg, suffix: str) -> None:
    corpus = make_corpus(60, seed=4)
    corpus.loc[0, "text"] = 'a "quoted" film , it was good .'
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".tsv":
        lines = ["text\tlabel", *(f"{t}\t{y}" for t, y in corpus.itertuples(index=False))]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")  # as SST-2: no quoting
    else:
        corpus.to_json(path, orient="records", lines=True)
    cfg = classify_cfg("text", path=str(path), level="char", min_freq=1)
    paths = RunPaths(tmp_path / "run")
    prepare(cfg, paths)
    meta, _ = load_prepared(paths.prepared_dir)
    assert '"' in meta["vocab"]["tokens"]  # quotes in TSV are text, not CSV quoting
    assert pd.read_csv(paths.raw_dir / "train.csv")["text"][0] == corpus["text"][0]


def test_classify_with_forecast_data_names_the_data_configs_that_fit() -> None:
    with pytest.raises(ConfigError, match=r"japanese_vowels.*sequences_csv.*text"):
        config.validate(config.compose(["task=classify"]))


def _write(path: Path, content: pd.DataFrame | bytes | str) -> str:
    if isinstance(content, pd.DataFrame):
        if path.suffix == ".jsonl":
            content.to_json(path, orient="records", lines=True)
        else:
            content.to_csv(path, index=False)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def _with_nan(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[5, "c1"] = np.nan
    return frame


def _relabel(frame: pd.DataFrame, row: int, label: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame["sequence_id"] == frame["sequence_id"][row], "label"] = label
    return frame


BAD_SEQUENCES: dict[str, tuple[Callable[[Path], dict[str, Any]], str]] = {
    "unknown label column": (
        lambda d: {"path": _write(d / "a.csv", long_frame()), "label_column": "class"},
        r"no column\(s\) \['class'\].*data.label_column",
    ),
    "missing label column": (
        lambda d: {"path": _write(d / "a.csv", long_frame().drop(columns="label"))},
        r"no column\(s\) \['label'\].*data.label_column",
    ),
    "NaN in a sequence": (
        lambda d: {"path": _write(d / "a.csv", _with_nan(long_frame()))},
        r"row 7 \(sequence 'q0', step 5\): channel `c1` is empty.*fill the value or drop",
    ),
    "label only in test": (
        lambda d: {
            "path": _write(d / "a.csv", long_frame()),
            "test_path": _write(d / "t.csv", _relabel(long_frame(6, seed=2), 0, "zzz")),
        },
        r"label 'zzz' \(first at q0\) never occurs in the training data",
    ),
    "extra channel in test": (
        lambda d: {
            "path": _write(d / "a.csv", long_frame()),
            "test_path": _write(d / "t.csv", long_frame(6, channels=3)),
        },
        r"has channel\(s\) \['c2'\] that the training data lacks",
    ),
    "missing channel in test": (
        lambda d: {
            "path": _write(d / "a.csv", long_frame(channels=3)),
            "test_path": _write(d / "t.csv", long_frame(6)),
        },
        r"lacks channel column\(s\) \['c2'\]",
    ),
    "not UTF-8": (
        lambda d: {
            "path": _write(
                d / "a.csv", "sequence_id,step,c0,label\nq\xe9,0,1,a\n".encode("latin-1")
            )
        },
        r"not UTF-8",
    ),
    "too few sequences to split": (
        lambda d: {"path": _write(d / "a.csv", long_frame(3))},
        r"The val split is empty \(3 labelled examples, data.val_fraction=0.15\)",
    ),
    "missing file": (lambda d: {"path": str(d / "nope.csv")}, r"does not exist"),
}

BAD_TEXT: dict[str, tuple[Callable[[Path], dict[str, Any]], str]] = {
    "missing text column": (
        lambda d: {"path": _write(d / "r.csv", make_corpus(40).rename(columns={"text": "review"}))},
        r"no column\(s\) \['text'\].*data.text_column",
    ),
    "unknown label column": (
        lambda d: {"path": _write(d / "r.csv", make_corpus(40)), "label_column": "stars"},
        r"no column\(s\) \['stars'\]",
    ),
    "empty text": (
        lambda d: {
            "path": _write(
                d / "r.csv", make_corpus(40).assign(text=lambda f: f.text.where(f.index != 9, "  "))
            )
        },
        r"record 10 .*`text` is empty",
    ),
    "non-UTF-8 CSV": (
        lambda d: {
            "path": _write(d / "r.csv", "text,label\ncaf\xe9 ok,positive\n".encode("cp1252"))
        },
        r"not UTF-8.*re-save",
    ),
    "non-UTF-8 JSONL": (
        lambda d: {
            "path": _write(d / "r.jsonl", '{"text": "caf\xe9", "label": "x"}\n'.encode("latin-1"))
        },
        r"not UTF-8.*byte 13",
    ),
    "label only in test": (
        lambda d: {
            "path": _write(d / "r.csv", make_corpus(40)),
            "test_path": _write(d / "t.csv", make_corpus(10).assign(label=["neutral"] * 10)),
        },
        r"label 'neutral' \(first at record 1\) never occurs in the training data",
    ),
}


@pytest.mark.parametrize(
    ("data", "case"),
    [("sequences_csv", c) for c in BAD_SEQUENCES] + [("text", c) for c in BAD_TEXT],
)
def test_bad_input_fails_clearly_and_keeps_earlier_outputs(
    tmp_path: Path, classify_cfg, data: str, case: str
) -> None:
    paths = RunPaths(tmp_path / "run")
    prepare(classify_cfg(data, path=str(REPO / classify_cfg(data).data.path)), paths)
    before = snapshot(paths.root)
    assert before
    make, message = (BAD_SEQUENCES if data == "sequences_csv" else BAD_TEXT)[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    with pytest.raises(DataError, match=message):
        prepare(classify_cfg(data, **make(inputs)), paths)
    assert snapshot(paths.root) == before


def test_vocabulary_min_freq_max_size_unknown_and_truncation() -> None:
    texts = ["the film , the plot", "the film was dull", "a dull film"]
    words = [tokenize(text, "word", lowercase=True) for text in texts]
    vocab = Vocabulary.build(words, "word", lowercase=True, min_freq=2, max_size=4)
    # Frequency first (the 3, film 3, dull 2), ties by name; <pad> and <unk> count in max_size.
    assert vocab.tokens == ["<pad>", "<unk>", "film", "the"]
    ids, lengths = vocab.encode_texts(["The FILM was dull !", "film"], max_length=3)
    np.testing.assert_array_equal(ids, [[3, 2, 1], [2, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1])
    chars = Vocabulary.build([list("abba")], "char", max_size=10)
    assert chars.tokens == ["<pad>", "<unk>", "a", "b"]


def test_basic_motions_keeps_its_split(tmp_path: Path, classify_cfg) -> None:
    summary = prepare(classify_cfg("basic_motions"), RunPaths(tmp_path))
    assert summary == {"classes": 4, "train": 32, "val": 8, "test": 40}
    meta, splits = load_prepared(tmp_path / "data" / "prepared")
    assert meta["n_features"] == 6 and splits["test"]["x"].shape == (40, 100, 6)
