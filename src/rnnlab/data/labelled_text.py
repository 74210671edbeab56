"""Labelled text from user files (CSV, TSV, JSONL): reading and checks.

Tokens and the vocabulary are ``rnnlab.data.text_tokens``'s, as for every task.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab.data.checks import require_columns
from rnnlab.data.sources import read_csv
from rnnlab.errors import DataError

TEXT_FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None}


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
    require_columns(
        frame, wanted, source, "Set `data.text_column` and `data.label_column` to match."
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
