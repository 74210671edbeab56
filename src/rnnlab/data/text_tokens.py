"""Text helpers shared by the language-modelling and seq2seq data: reading, tokens, vocabulary.

Pure Python (no torch), so the prepare stage stays fast and the tasks reuse the same code to
encode prompts and sources at prediction time.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rnnlab.errors import DataError

UNK, PAD, BOS, EOS = "<unk>", "<pad>", "<s>", "</s>"
LEVELS = ("char", "word")


def read_text(path: Path) -> str:
    """The whole file as text; empty or non-UTF-8 files are refused with the reason."""
    if not path.is_file():
        raise DataError(f"Text file {path} not found; set `data.path` to an existing file.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8 text: byte {err.start} (line {line}) cannot be decoded. "
            "Convert it first, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    if not text.strip():
        raise DataError(f"{path} is empty (or only whitespace); it needs some text.")
    return text


def tokenize(text: str, level: str) -> list[str]:
    """Characters, or whitespace-separated words."""
    if level == "char":
        return list(text)
    if level == "word":
        return text.split()
    raise DataError(f"data.level={level!r}; choose one of {list(LEVELS)}.")


def detokenize(tokens: Iterable[str], level: str) -> str:
    return ("" if level == "char" else " ").join(tokens)


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id. Index 0 is always ``<unk>``; specials come next, then tokens by frequency
    (ties alphabetical), so a special's id depends only on the specials' order."""

    tokens: list[str]

    @classmethod
    def build(cls, sequences: Iterable[list[str]], specials: tuple[str, ...] = ()) -> Vocabulary:
        counts = Counter(token for sequence in sequences for token in sequence)
        fixed = [UNK, *(s for s in specials if s != UNK)]
        ranked = sorted((t for t in counts if t not in fixed), key=lambda t: (-counts[t], t))
        return cls([*fixed, *ranked])

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def index(self) -> dict[str, int]:
        """Token -> id, built once: every text of a dataset is encoded through it."""
        return {token: i for i, token in enumerate(self.tokens)}

    def encode(self, tokens: list[str], what: str | None = None) -> list[int]:
        """Ids of ``tokens``; unknown tokens become ``<unk>`` (id 0).

        With ``what`` (e.g. "The prompt") a warning names the unknown tokens: user input at
        prediction time. Prepared splits count them in their metadata instead.
        """
        lookup = self.index
        unknown = sorted({t for t in tokens if t not in lookup})
        if unknown and what is not None:
            warnings.warn(
                f"{what} has {len(unknown)} token(s) outside the vocabulary, read as <unk>: "
                f"{unknown[:10]}",
                stacklevel=2,
            )
        return [lookup.get(t, 0) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]
