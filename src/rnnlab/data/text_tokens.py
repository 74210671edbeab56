"""Text as tokens for every task: reading, the tokenizer of each level, the vocabulary.

One convention everywhere: ``<pad>`` is id 0 and ``<unk>`` id 1 in every vocabulary, other
specials (``<s>``, ``</s>``) come next, then tokens by training frequency. A vocabulary carries
its tokenizer (level, lowercasing) and is saved in ``meta.json`` as ``to_dict()``, so prompts,
sources and texts are encoded at prediction time exactly as in training. Pure Python and numpy
(no torch), so the prepare stage stays fast.
"""

from __future__ import annotations

import codecs
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.data.preprocessing import pad
from rnnlab.errors import DataError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID, UNK_ID = 0, 1
LEVELS = ("char", "word")


def read_text(path: Path) -> str:
    """The whole file as text; empty or non-UTF-8 files are refused with the reason."""
    return "".join(read_text_chunks(path))


def read_text_chunks(path: Path, block: int = 1 << 19) -> Iterator[str]:
    """The file as text, decoded ``block`` bytes at a time (a character is never cut), so a
    text larger than memory can be streamed. A non-UTF-8 file is refused at its first bad
    byte, an empty one (or only whitespace) once it has been read."""
    if not path.is_file():
        raise DataError(f"Text file {path} not found; set `data.path` to an existing file.")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0  # bytes and line breaks before the current block
    has_text = False
    with open(path, "rb") as file:
        while True:
            raw = file.read(block)
            pending = len(decoder.getstate()[0])  # undecoded bytes the block before left
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:  # err.object: the pending bytes, then the block
                start = offset - pending + err.start
                line = newlines + err.object[: err.start].count(b"\n") + 1
                raise DataError(
                    f"{path} is not UTF-8 text: byte {start} (line {line}) cannot be decoded. "
                    "Convert it first, e.g. `iconv -f latin1 -t utf-8`."
                ) from None
            offset, newlines = offset + len(raw), newlines + raw.count(b"\n")
            has_text = has_text or bool(text.strip())
            if text:
                yield text
            if not raw:
                break
    if not has_text:
        raise DataError(f"{path} is empty (or only whitespace); it needs some text.")


def tokenize(text: str, level: str, lowercase: bool = False) -> list[str]:
    """Characters, or whitespace-separated words (so that joining them gives the text back)."""
    text = text.lower() if lowercase else text
    if level == "char":
        return list(text)
    if level == "word":
        return text.split()
    raise DataError(f"Tokenizer level {level!r}; choose one of {list(LEVELS)}.")


def detokenize(tokens: Iterable[str], level: str) -> str:
    return ("" if level == "char" else " ").join(tokens)


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id with its tokenizer: ``<pad>`` 0, ``<unk>`` 1, other specials, then tokens
    by frequency (ties alphabetical), so a special's id depends only on the specials' order."""

    tokens: list[str]
    level: str
    lowercase: bool = False

    @classmethod
    def build(cls, sequences: Iterable[list[str]], level: str, **options: Any) -> Vocabulary:
        """From tokenised training sequences; ``options`` as for ``from_counts``."""
        counts = Counter(token for sequence in sequences for token in sequence)
        return cls.from_counts(counts, level, **options)

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        level: str,
        *,
        lowercase: bool = False,
        specials: tuple[str, ...] = (),
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """From the training tokens' counts (counted in chunks when the text is large);
        ``max_size`` counts the specials too."""
        fixed = [PAD, UNK, *(s for s in specials if s not in (PAD, UNK))]
        kept = [t for t, n in counts.items() if n >= min_freq and t not in fixed]
        ranked = sorted(kept, key=lambda t: (-counts[t], t))
        room = None if max_size is None else max(max_size - len(fixed), 0)
        return cls([*fixed, *ranked[:room]], level, lowercase)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Vocabulary:
        return cls(**saved)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def index(self) -> dict[str, int]:
        """Token -> id, built once: every text of a dataset is encoded through it."""
        return {token: i for i, token in enumerate(self.tokens)}

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.level, self.lowercase)

    def encode(self, tokens: list[str], what: str | None = None) -> list[int]:
        """Ids of ``tokens``; unknown tokens become ``<unk>``.

        With ``what`` (e.g. "The prompt") a warning names the unknown tokens: user input at
        prediction time. Prepared splits count them in their metadata instead.
        """
        lookup = self.index
        unknown = sorted({t for t in tokens if t not in lookup})
        if unknown and what is not None:
            warnings.warn(
                f"{what} has {len(unknown)} token(s) outside the vocabulary, read as {UNK}: "
                f"{unknown[:10]}",
                stacklevel=2,
            )
        return [lookup.get(t, UNK_ID) for t in tokens]

    def encode_texts(
        self, texts: list[str], max_length: int | None = None, what: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> ids (N, T) int64 right-padded with ``<pad>``, and lengths (N,); each text
        cut at ``max_length`` tokens. A text without a token is refused."""
        encoded = [self.encode(self.tokenize(text), what)[:max_length] for text in texts]
        if any(not ids for ids in encoded):
            raise DataError(f"{what or 'A'} text is empty; every text needs at least one token.")
        return pad([np.asarray(ids, dtype=np.int64) for ids in encoded], np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def text(self, ids: Iterable[int]) -> str:
        return detokenize(self.decode(ids), self.level)
