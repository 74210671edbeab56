"""Language-modelling data: one text, tokenised, cut into contiguous train/val/test blocks.

``data/raw/corpus.txt`` is the text as read; ``data/prepared/`` holds ``{train,val,test}.npy``
(token ids, int32, memory-mapped at training time) and ``meta.json`` (the vocabulary, built on
the training block only, so val and test tokens never seen in training count as ``<unk>``, and
the raw text's hash).

The text is streamed, never held whole, so a corpus larger than memory prepares in flat
memory: one pass reads it in chunks (copying it to ``data/raw``, counting line starts and
writing every token's provisional code to a scratch ``.npy``), a second counts the training
block's codes for the vocabulary, a third writes each split's ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rnnlab.data import prepare_scratch, read_prepared_meta, write_prepared
from rnnlab.data.arrays import NpyWriter, open_mapped, read_chunks
from rnnlab.data.preprocessing import contiguous_split
from rnnlab.data.sources import resolve_user_path
from rnnlab.data.text_tokens import UNK_ID, Vocabulary, detokenize, read_text_chunks
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

SPLITS = ("train", "val", "test")
WARMUP_TOKENS = 256  # training text read before a prompt, so generation starts mid-stream
TEXT_CHUNK = 1 << 19  # characters of an in-memory text handed on at a time (as arrays.CHUNK)


def pydoc_topics_text() -> str:
    """CPython's help topics (``pydoc_data.topics``), joined in a fixed order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def text_chunks(data: DictConfig, root: Path) -> Iterator[str]:
    """The configured text a chunk at a time, cut at ``data.max_chars``."""
    if data.source == "pydoc_topics":
        text = pydoc_topics_text()
        chunks = (text[i : i + TEXT_CHUNK] for i in range(0, len(text), TEXT_CHUNK))
    else:
        chunks = read_text_chunks(resolve_user_path(data.path, root))
    left = data.max_chars or None
    for chunk in chunks:
        if left is not None:
            chunk = chunk[:left]
            left -= len(chunk)
        if chunk:
            yield chunk
        if left == 0:
            return


def warmup_tokens(train: list[str]) -> list[str]:
    """The end of the training text, cut after its last line break: read before a prompt, it
    puts the model in the state it has at a line start (training never starts from zero)."""
    tail = train[-WARMUP_TOKENS:]
    ends = [i for i, token in enumerate(tail) if token == "\n"]
    return tail[: ends[-1] + 1] if ends else tail


class LineStarts:
    """The most frequent first words of a text's lines that start with a letter (with the space
    after them, at char level): sample prompts that fit the corpus. Fed chunk by chunk."""

    def __init__(self, level: str) -> None:
        self.level, self.words, self.carry = level, Counter(), ""

    def feed(self, chunk: str) -> None:
        lines = (self.carry + chunk).splitlines(keepends=True)
        ended = lines[-1] != lines[-1].splitlines()[0]  # the last line has its line break
        self.carry = "" if ended else lines.pop()
        for line in lines:
            self._count(line.splitlines()[0])

    def _count(self, line: str) -> None:
        first = line.split(" ", 1)[0]
        spaced = self.level == "char" and len(line) > len(first)
        if first[:1].isalpha():
            self.words[first + (" " if spaced else "")] += 1

    def most_common(self, k: int = 2) -> list[str]:
        if self.carry:
            self._count(self.carry)
            self.carry = ""
        return [word for word, _ in self.words.most_common(k)]


class TokenCodes:
    """Tokens of a text fed chunk by chunk as int64 codes: a character's code point, or a
    word's index in order of first appearance (a word cut by a chunk's end waits for the next
    chunk). ``token(code)`` maps a code back to its token."""

    def __init__(self, level: str) -> None:
        if level not in ("char", "word"):
            raise DataError(f"Tokenizer level {level!r}; choose one of ['char', 'word'].")
        self.level, self.carry = level, ""
        self.words: dict[str, int] = {}
        self.word_list: list[str] = []

    def codes(self, chunk: str) -> np.ndarray:
        if self.level == "char":  # surrogatepass: lone surrogates are characters too
            return np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), "<u4").astype(np.int64)
        text = self.carry + chunk
        words = text.split()
        self.carry = words.pop() if words and not text[-1].isspace() else ""
        return self._word_codes(words)

    def finish(self) -> np.ndarray:
        """Codes of what is still held back (the last word)."""
        words, self.carry = ([self.carry] if self.carry else []), ""
        return self._word_codes(words)

    def _word_codes(self, words: list[str]) -> np.ndarray:
        codes = np.empty(len(words), dtype=np.int64)
        for i, word in enumerate(words):
            code = self.words.get(word)
            if code is None:
                code = self.words[word] = len(self.word_list)
                self.word_list.append(word)
            codes[i] = code
        return codes

    def token(self, code: int) -> str:
        return chr(code) if self.level == "char" else self.word_list[code]


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    with prepare_scratch(paths) as scratch:
        return _prepare(cfg.data, paths, scratch)


def _prepare(data: DictConfig, paths: RunPaths, scratch: Path) -> dict[str, Any]:
    tokens, line_starts = TokenCodes(data.level), LineStarts(data.level)
    corpus, codes_path = scratch / "corpus.txt", scratch / "codes.npy"
    with open(corpus, "wb") as raw, NpyWriter(codes_path, np.int64) as codes:
        for chunk in text_chunks(data, paths.root):
            raw.write(chunk.encode("utf-8"))
            codes.append(tokens.codes(chunk))
            line_starts.feed(chunk)
        codes.append(tokens.finish())
    parts = contiguous_split(codes.length, data.val_fraction, data.test_fraction, 2, "tokens")

    counts: Counter[int] = Counter()
    for chunk in read_chunks(codes_path, 0, parts["train"].stop):
        seen, times = np.unique(chunk, return_counts=True)
        counts.update(dict(zip(seen.tolist(), times.tolist(), strict=True)))
    vocab = Vocabulary.from_counts({tokens.token(c): n for c, n in counts.items()}, data.level)
    known = np.array(sorted(counts), dtype=np.int64)  # codes seen in training, sorted
    known_ids = np.array([vocab.index[tokens.token(c)] for c in known.tolist()], dtype=np.int32)

    arrays, unknown = {}, {}
    for split, part in parts.items():
        arrays[split], unknown[split] = scratch / f"{split}.npy", 0
        with NpyWriter(arrays[split], np.int32) as out:
            for chunk in read_chunks(codes_path, part.start, part.stop):
                at = np.searchsorted(known, chunk).clip(max=len(known) - 1)
                ids = np.where(known[at] == chunk, known_ids[at], UNK_ID)
                unknown[split] += int((ids == UNK_ID).sum())
                out.append(ids)
    train_end = parts["train"].stop
    tail = open_mapped(codes_path)[max(train_end - WARMUP_TOKENS, 0) : train_end]
    meta = {
        "task": "lm",
        "dataset": data.name,
        "vocab": vocab.to_dict(),
        "tokens": {split: part.stop - part.start for split, part in parts.items()},
        "unknown_tokens": unknown,
        "warmup": detokenize(warmup_tokens([tokens.token(c) for c in tail.tolist()]), data.level),
        "line_starts": line_starts.most_common(),
    }
    write_prepared(paths, meta, {}, {"corpus.txt": corpus}, arrays=arrays)
    return {"vocab_size": len(vocab), **meta["tokens"]}


def load_prepared(prepared_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``meta.json`` and each split's token ids (int32), memory-mapped."""
    meta = read_prepared_meta(prepared_dir, "lm")
    missing = [s for s in SPLITS if not (prepared_dir / f"{s}.npy").exists()]
    if missing:
        raise DataError(
            f"{prepared_dir} has no {', '.join(f'{s}.npy' for s in missing)} (prepared by an "
            "older rnnlab); run the prepare stage again (`dvc repro prepare`)."
        )
    return meta, {split: open_mapped(prepared_dir / f"{split}.npy") for split in SPLITS}
