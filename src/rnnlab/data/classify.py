"""Classification data: labelled sequences or texts in, padded arrays with labels out.

``data/raw/`` holds what went in: ``train.csv`` (and ``test.csv`` when the source has its own
test split) in the documented long format for sequences, or text and label for text.
``data/prepared/`` holds ``{train,val,test}.npz`` (``x``: (N, T, C) float32 scaled per channel,
or (N, T) int64 token ids, right-padded; ``lengths`` (N,); ``y`` (N,) class indices; ``ids``)
and ``meta.json`` (classes, channels and scaler, or the vocabulary). The scaler and the
vocabulary are fitted on the training split only; validation is carved from it, stratified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from rnnlab.config import CLASSIFY_AUDIO
from rnnlab.data import read_prepared_splits, write_prepared
from rnnlab.data.labelled_text import check_text_table, read_text_table
from rnnlab.data.preprocessing import Scaler, pad, stratified_split
from rnnlab.data.sequences import SequenceSet, load_builtin, parse_long
from rnnlab.data.sources import read_csv, resolve_user_path
from rnnlab.data.text_tokens import Vocabulary, tokenize
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

SPLITS = ("train", "val", "test")
BUILTIN = ("japanese_vowels", "basic_motions")


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    data = cfg.data
    if data.source in CLASSIFY_AUDIO:
        from rnnlab.data.spoken_words import prepare_audio

        arrays, meta, raw = prepare_audio(data, paths)  # validates every recording
    else:
        prepare_source = _prepare_text if data.source == "text" else _prepare_sequences
        raw_frames, arrays, meta = prepare_source(data, paths.root, cfg.seed)
        raw = {f"{name}.csv": frame.to_csv(index=False) for name, frame in raw_frames.items()}
    meta = {"task": "classify", "dataset": data.name, **meta}
    meta["counts"] = {s: len(arrays[s]["y"]) for s in SPLITS}
    write_prepared(paths, meta, arrays, raw)
    return {"classes": len(meta["classes"]), **meta["counts"]}


def load_prepared(prepared_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """``meta.json`` and each split's arrays (``x``, ``lengths``, ``y``, ``ids``)."""
    return read_prepared_splits(prepared_dir, "classify")


def sorted_classes(labels: list[str]) -> list[str]:
    """Distinct labels, numbers in numeric order ("2" before "10"), then the rest by name."""

    def key(label: str) -> tuple[int, float, str]:
        try:
            return (0, float(label), label)
        except ValueError:
            return (1, 0.0, label)

    return sorted(set(labels), key=key)


def _check_labels_known(labels: list[str], ids: list[str], classes: list[str], source: str) -> None:
    unknown = [(i, label) for i, label in zip(ids, labels, strict=True) if label not in classes]
    if unknown:
        first_id, first = unknown[0]
        raise DataError(
            f"{source}: label {first!r} (first at {first_id}) never occurs in the training data "
            f"(classes {classes}), so no model can predict it. Remove those "
            f"{len(unknown)} example(s) or add training examples of that class."
        )


def _split_indices(
    labels: list[str], test_given: bool, data: DictConfig, seed: int
) -> dict[str, np.ndarray]:
    """Indices into the training file for train/val, plus test when no test file is given."""
    y = np.asarray(labels)
    index = {"test": np.empty(0, dtype=np.int64)}
    pool = np.arange(len(y))
    if not test_given:
        pool, index["test"] = stratified_split(y, data.test_fraction, seed)
    train, val = stratified_split(y[pool], data.val_fraction, seed + 1)
    index["train"], index["val"] = pool[train], pool[val]
    for split, key in (("val", "val_fraction"), ("test", "test_fraction")):
        if len(index[split]) == 0 and not (split == "test" and test_given):
            raise DataError(
                f"The {split} split is empty ({len(y)} labelled examples, data.{key}="
                f"{data[key]}); raise data.{key} or add data."
            )
    return index


def _prepare_sequences(
    data: DictConfig, root: Path, seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    # The built-in sets come in the same long format, with the column names of their configs.
    columns = {"id_column": data.id_column, "step_column": data.step_column}
    label_column = data.label_column
    if data.source in BUILTIN:
        train_frame, test_frame = (load_builtin(data.source, s) for s in ("train", "test"))
        names = {"train": f"the {data.source} training split", "test": "its test split"}
    else:
        train_path = resolve_user_path(data.path, root, "path")
        train_frame = read_csv(train_path)
        test_frame = None
        if data.test_path:
            test_frame = read_csv(resolve_user_path(data.test_path, root, "test_path"))
        names = {"train": str(data.path), "test": str(data.test_path or data.path)}
    train_set = parse_long(
        train_frame,
        names["train"],
        label_column=label_column,
        channels=list(data.channel_columns),
        **columns,
    )
    raw = {"train": train_frame[[*columns.values(), *train_set.channels, label_column]]}
    index = _split_indices(train_set.labels, test_frame is not None, data, seed)
    parts = {split: _subset(train_set, idx) for split, idx in index.items()}
    if test_frame is not None:
        keys = {*columns.values(), label_column}
        extra = [c for c in test_frame.columns if c not in keys and c not in train_set.channels]
        if extra and not data.channel_columns:
            raise DataError(
                f"{names['test']} has channel(s) {extra} that the training data lacks (training "
                f"channels: {train_set.channels}); both files need the same channels, or list "
                "the ones to use in `data.channel_columns`."
            )
        parts["test"] = parse_long(
            test_frame,
            names["test"],
            label_column=label_column,
            channels=train_set.channels,
            **columns,
        )
        raw["test"] = test_frame[[*columns.values(), *train_set.channels, label_column]]
    classes = sorted_classes(parts["train"].labels)
    _check_labels_known(parts["test"].labels, parts["test"].ids, classes, names["test"])
    scaler = Scaler.fit(np.concatenate(parts["train"].values), data.scaling)  # real steps only
    arrays = {}
    for split, part in parts.items():
        x, lengths = pad([scaler.transform(v) for v in part.values])
        arrays[split] = _arrays(x, lengths, part.labels, part.ids, classes)
    meta = {
        "kind": "sequences",
        "classes": classes,
        "channels": train_set.channels,
        "n_features": len(train_set.channels),
        "scaler": scaler.to_dict(),
        **columns,
    }
    return raw, arrays, meta


def _subset(sequences: SequenceSet, index: np.ndarray) -> SequenceSet:
    return SequenceSet(
        [sequences.ids[i] for i in index],
        [sequences.values[i] for i in index],
        [sequences.labels[i] for i in index],
        sequences.channels,
    )


def _arrays(
    x: np.ndarray, lengths: np.ndarray, labels: list[str], ids: list[str], classes: list[str]
) -> dict[str, np.ndarray]:
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup[label] for label in labels], dtype=np.int64)
    return {"x": x, "lengths": lengths, "y": y, "ids": np.asarray(ids, dtype=str)}


def _prepare_text(
    data: DictConfig, root: Path, seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    text_col, label_col = data.text_column, data.label_column
    frames = {"train": read_text_table(resolve_user_path(data.path, root, "path"))}
    names = {"train": str(data.path), "test": str(data.test_path or data.path)}
    if data.test_path:
        frames["test"] = read_text_table(resolve_user_path(data.test_path, root, "test_path"))
    for split, frame in frames.items():
        check_text_table(frame, names[split], text_col, label_col)
    raw = {split: frame[[text_col, label_col]] for split, frame in frames.items()}
    texts = {s: f[text_col].astype(str).tolist() for s, f in frames.items()}
    labels = {s: f[label_col].astype(str).tolist() for s, f in frames.items()}
    ids = {s: [f"record {i + 1}" for i in range(len(f))] for s, f in frames.items()}
    index = _split_indices(labels["train"], "test" in frames, data, seed)
    parts = {}
    for split, idx in index.items():
        if split == "test" and "test" in frames:
            parts[split] = (texts["test"], labels["test"], ids["test"])
        else:
            parts[split] = tuple([v["train"][i] for i in idx] for v in (texts, labels, ids))
    classes = sorted_classes(parts["train"][1])
    _check_labels_known(parts["test"][1], parts["test"][2], classes, names["test"])
    vocab = Vocabulary.build(
        (tokenize(text, data.level, data.lowercase) for text in parts["train"][0]),
        data.level,
        lowercase=data.lowercase,
        min_freq=data.min_freq,
        max_size=data.max_vocab,
    )
    arrays = {}
    for split, (split_texts, split_labels, split_ids) in parts.items():
        x, lengths = vocab.encode_texts(split_texts, data.max_length)
        arrays[split] = _arrays(x, lengths, split_labels, split_ids, classes)
    meta = {
        "kind": "text",
        "classes": classes,
        "text_column": text_col,
        "vocab": vocab.to_dict(),
        "max_length": data.max_length,
        "n_tokens": len(vocab),
    }
    return raw, arrays, meta
