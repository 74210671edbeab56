"""Sequence-to-sequence data: generated date normalisation, or the user's tab-separated pairs.

``data/raw/pairs.tsv`` holds every pair as read or generated; ``data/prepared/`` holds
``{train,val,test}.npz`` (string arrays ``source``, ``target``) and ``meta.json`` (source and
target vocabularies built on the training pairs only, the raw data's hash).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from rnnlab.data import read_prepared_splits, write_prepared
from rnnlab.data.preprocessing import shuffled_split
from rnnlab.data.sources import resolve_user_path
from rnnlab.data.text_tokens import BOS, EOS, Vocabulary, read_text, tokenize
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

SPLITS = ("train", "val", "test")
TARGET_SPECIALS = (BOS, EOS)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August"]
MONTHS += ["September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST_DAY, LAST_DAY = dt.date(1950, 1, 1), dt.date(2049, 12, 31)  # two-digit years stay unique


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
UNITS += ["eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"]
UNITS += ["eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINAL_UNITS = {"one": "first", "two": "second", "three": "third", "five": "fifth"}
ORDINAL_UNITS |= {"eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def number_words(n: int) -> str:
    """0..99 in words: 42 -> 'forty-two'."""
    if n < 20:
        return UNITS[n]
    tens, unit = divmod(n, 10)
    return TENS[tens] + (f"-{UNITS[unit]}" if unit else "")


def ordinal_words(n: int) -> str:
    """1..99 as an ordinal in words: 21 -> 'twenty-first', 30 -> 'thirtieth'."""
    words = number_words(n)
    head, _, last = words.rpartition("-")
    if last in ORDINAL_UNITS:
        last = ORDINAL_UNITS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}-{last}" if head else last


def year_words(year: int) -> str:
    """As the year is said: 1981 -> 'nineteen eighty-one', 2006 -> 'two thousand and six'."""
    century, rest = divmod(year, 100)
    if century == 20:
        return "two thousand" + (f" and {number_words(rest)}" if rest else "")
    return f"{number_words(century)} " + (f"{number_words(rest)}" if rest else "hundred")


# Human ways of writing a date, from short and numeric to long and spelled out; built by hand so
# the output does not depend on the machine's locale. The spelled-out ones (up to ~75 characters)
# put the day 40-60 characters before the end: a decoder that sees only the encoder's final
# state has to carry it that far, which is where attention should show (docs/benchmarks.md).
DATE_FORMATS = (
    lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}",
    lambda d: f"{d.year}/{d.month}/{d.day}",
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    lambda d: f"{d.month:02d}/{d.day:02d}/{d.year % 100:02d}",
    lambda d: f"{d.day}-{MONTHS[d.month - 1][:3]}-{d.year}",
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    lambda d: f"{MONTHS[d.month - 1].lower()} {_ordinal(d.day)}, {d.year}",
    lambda d: f"{WEEKDAYS[d.weekday()][:3]} {d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    lambda d: f"the {_ordinal(d.day)} of {MONTHS[d.month - 1]}, {d.year}",
    lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    lambda d: f"{WEEKDAYS[d.weekday()]} the {_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}",
    lambda d: f"{MONTHS[d.month - 1]} the {ordinal_words(d.day)}, {year_words(d.year)}",
    lambda d: (
        f"{WEEKDAYS[d.weekday()]}, the {ordinal_words(d.day)} of {MONTHS[d.month - 1]}, "
        f"{year_words(d.year)}"
    ),
    lambda d: (
        f"the {ordinal_words(d.day)} day of {MONTHS[d.month - 1]} in the year of "
        f"{year_words(d.year)}"
    ),
)


def generate_dates(n_train: int, n_val: int, n_test: int, seed: int) -> dict[str, pd.DataFrame]:
    """Distinct dates per split (no date in two splits), each in one randomly chosen format."""
    days = (LAST_DAY - FIRST_DAY).days + 1
    total = n_train + n_val + n_test
    if total > days:
        raise DataError(
            f"n_train + n_val + n_test = {total} exceeds the {days} distinct dates between "
            f"{FIRST_DAY} and {LAST_DAY}; lower them."
        )
    rng = np.random.default_rng(seed)
    offsets = rng.choice(days, size=total, replace=False)
    styles = rng.integers(len(DATE_FORMATS), size=total)
    dates = [FIRST_DAY + dt.timedelta(days=int(o)) for o in offsets]
    frame = pd.DataFrame(
        {
            "source": [DATE_FORMATS[s](d) for s, d in zip(styles, dates, strict=True)],
            "target": [d.isoformat() for d in dates],
        }
    )
    ends = np.cumsum([n_train, n_val, n_test])
    return {
        split: frame.iloc[end - size : end].reset_index(drop=True)
        for split, size, end in zip(SPLITS, (n_train, n_val, n_test), ends, strict=True)
    }


def read_pairs(path: Path) -> pd.DataFrame:
    """``source<TAB>target`` per line; blank lines are skipped, other malformed lines refused."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            problem = "has no tab" if len(parts) == 1 else "is not one source<TAB>target pair"
            raise DataError(
                f"{path}, line {number} {problem}: {line[:60]!r}. Each line must be a source "
                "text, one tab, and a non-empty target text."
            )
        rows.append((parts[0].strip(), parts[1].strip()))
    return pd.DataFrame(rows, columns=["source", "target"])


def load_pairs(cfg: DictConfig, root: Path) -> dict[str, pd.DataFrame]:
    data = cfg.data
    if data.source == "dates":
        return generate_dates(data.n_train, data.n_val, data.n_test, cfg.seed)
    pairs = read_pairs(resolve_user_path(data.path, root))
    parts = shuffled_split(len(pairs), data.val_fraction, data.test_fraction, cfg.seed, "pairs")
    return {split: pairs.iloc[parts[split]].reset_index(drop=True) for split in SPLITS}


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    level = cfg.data.level
    splits = load_pairs(cfg, paths.root)
    train = splits["train"]
    source_vocab = Vocabulary.build((tokenize(s, level) for s in train["source"]), level)
    target_vocab = Vocabulary.build(
        (tokenize(t, level) for t in train["target"]), level, specials=TARGET_SPECIALS
    )
    everything = pd.concat([splits[s].assign(split=s) for s in SPLITS], ignore_index=True)
    meta = {
        "task": "seq2seq",
        "dataset": cfg.data.name,
        "source_vocab": source_vocab.to_dict(),
        "target_vocab": target_vocab.to_dict(),
        "pairs": {split: len(splits[split]) for split in SPLITS},
    }
    arrays = {
        s: {c: np.asarray(f[c], dtype=str) for c in ("source", "target")} for s, f in splits.items()
    }
    write_prepared(paths, meta, arrays, {"pairs.tsv": everything.to_csv(sep="\t", index=False)})
    return {"source_vocab": len(source_vocab), "target_vocab": len(target_vocab), **meta["pairs"]}


def load_prepared(
    prepared_dir: Path, splits: tuple[str, ...] = SPLITS
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """``meta.json`` and each split's ``source`` and ``target`` strings."""
    return read_prepared_splits(prepared_dir, "seq2seq", splits)
