"""Labelled text from user files (CSV, TSV, JSONL), tokenizers and a vocabulary.

The vocabulary is built on the training split only and saved with the prepared data; the
logged MLflow model re-uses it, so raw strings go in and labels come out.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab.data.sources import read_csv
from rnnlab.errors import DataError

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1
TEXT_FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None}
_WORD = re.compile(r"\w+|[^\w\s]")  # words, and each punctuation mark on its own


def read_text_table(path: Path) -> pd.DataFrame:
    """Read a CSV, TSV or JSONL file (chosen by its extension) as a table of strings."""
    suffix = path.suffix.lower()
    if suffix not in TEXT_FORMATS:
        raise DataError(
            f"{path}: unknown text file type {suffix!r}; use one of {sorted(TEXT_FORMATS)}."
        )
    if suffix != ".jsonl":
        return read_csv(path, sep=TEXT_FORMATS[suffix])
    if not path.exists():
        raise DataError(f"Data file {path} does not exist; put it under data/external/.")
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); re-save it as UTF-8."
        ) from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}, line {number}: not a JSON object ({err.msg}); JSONL needs one object "
                'per line, e.g. {"text": "great film", "label": "positive"}.'
            ) from None
        records.append(record)
    if not records:
        raise DataError(f"{path} holds no records; it needs one JSON object per line.")
    return pd.DataFrame.from_records(records)


def check_text_table(
    frame: pd.DataFrame, source: str, text_column: str, label_column: str | None
) -> None:
    """Named columns present, no empty text, no missing label; errors name the row and fix."""
    wanted = [text_column] + ([label_column] if label_column else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source} has no column(s) {missing}; its columns are {list(frame.columns)}. "
            "Set `data.text_column` and `data.label_column` to match."
        )
    text = frame[text_column]
    empty = (text.isna() | text.astype(str).str.strip().eq("")).to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(
            f"{source}, record {row + 1} (after the header): `{text_column}` is empty. Remove "
            "the record or give it text."
        )
    if label_column:
        unlabeled = frame[label_column].isna().to_numpy()
        if unlabeled.any():
            row = int(np.flatnonzero(unlabeled)[0])
            raise DataError(
                f"{source}, record {row + 1} (after the header): no label in `{label_column}`. "
                "Label every record or remove it."
            )


def tokenize(text: str, tokenizer: str, lowercase: bool) -> list[str]:
    text = text.lower() if lowercase else text
    if tokenizer == "char":
        return list(text)
    if tokenizer == "word":
        return _WORD.findall(text)
    raise DataError(f"data.tokenizer={tokenizer!r}; choose one of ['char', 'word'].")


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id map: ``<pad>`` is 0, ``<unk>`` is 1, then tokens by training frequency."""

    tokens: list[str]
    tokenizer: str
    lowercase: bool
    max_length: int

    @classmethod
    def build(
        cls,
        texts: list[str],
        tokenizer: str,
        lowercase: bool,
        min_freq: int,
        max_size: int,
        max_length: int,
    ) -> Vocabulary:
        counts = Counter(t for text in texts for t in tokenize(text, tokenizer, lowercase))
        # Most frequent first; ties alphabetically, so the vocabulary is deterministic.
        kept = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        return cls([PAD, UNK, *kept[: max_size - 2]], tokenizer, lowercase, max_length)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> ids (N, T) int64 right-padded with 0, and lengths (N,); cut at max_length."""
        index = {t: i for i, t in enumerate(self.tokens)}
        encoded = [
            [index.get(t, 1) for t in tokenize(text, self.tokenizer, self.lowercase)]
            for text in texts
        ]
        encoded = [ids[: self.max_length] or [1] for ids in encoded]  # never a 0-length text
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
        out = np.zeros((len(encoded), int(lengths.max())), dtype=np.int64)
        for i, ids in enumerate(encoded):
            out[i, : len(ids)] = ids
        return out, lengths

    def to_dict(self) -> dict:
        return asdict(self)
