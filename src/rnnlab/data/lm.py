"""Language-modelling data: one text, tokenised, cut into contiguous train/val/test blocks.

``data/raw/corpus.txt`` is the text as read; ``data/prepared/`` holds ``{train,val,test}.npy``
(token ids, int32) and ``meta.json`` (the vocabulary, built on the training block only, so val
and test tokens never seen in training count as ``<unk>``, and the raw text's hash).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rnnlab.data import read_prepared_splits, write_prepared
from rnnlab.data.preprocessing import contiguous_split
from rnnlab.data.sources import resolve_user_path
from rnnlab.data.text_tokens import UNK_ID, Vocabulary, detokenize, read_text, tokenize
from rnnlab.paths import RunPaths

SPLITS = ("train", "val", "test")
WARMUP_TOKENS = 256  # training text read before a prompt, so generation starts mid-stream


def pydoc_topics_text() -> str:
    """CPython's help topics (``pydoc_data.topics``), joined in a fixed order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def load_text(data: DictConfig, root: Path) -> str:
    if data.source == "pydoc_topics":
        text = pydoc_topics_text()
    else:
        text = read_text(resolve_user_path(data.path, root))
    return text[: data.max_chars] if data.max_chars else text


def warmup_tokens(train: list[str]) -> list[str]:
    """The end of the training text, cut after its last line break: read before a prompt, it
    puts the model in the state it has at a line start (training never starts from zero)."""
    tail = train[-WARMUP_TOKENS:]
    ends = [i for i, token in enumerate(tail) if token == "\n"]
    return tail[: ends[-1] + 1] if ends else tail


def common_line_starts(text: str, level: str, k: int = 2) -> list[str]:
    """The ``k`` most frequent first words of the text's lines that start with a letter (with
    the space after them, at char level): sample prompts that fit the corpus."""
    words = Counter()
    for line in text.splitlines():
        first = line.split(" ", 1)[0]
        if first[:1].isalpha():
            words[first + (" " if level == "char" and len(line) > len(first) else "")] += 1
    return [word for word, _ in words.most_common(k)]


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    data = cfg.data
    text = load_text(data, paths.root)
    tokens = tokenize(text, data.level)
    parts = contiguous_split(len(tokens), data.val_fraction, data.test_fraction, 2, "tokens")
    blocks = {split: tokens[part] for split, part in parts.items()}
    vocab = Vocabulary.build([blocks["train"]], data.level)
    ids = {
        split: np.asarray(vocab.encode(block), dtype=np.int32) for split, block in blocks.items()
    }
    meta = {
        "task": "lm",
        "dataset": data.name,
        "vocab": vocab.to_dict(),
        "tokens": {split: len(block) for split, block in blocks.items()},
        "unknown_tokens": {split: int((ids[split] == UNK_ID).sum()) for split in SPLITS},
        "warmup": detokenize(warmup_tokens(blocks["train"]), data.level),
        "line_starts": common_line_starts(text, data.level),
    }
    write_prepared(paths, meta, {s: {"ids": ids[s]} for s in SPLITS}, {"corpus.txt": text})
    return {"vocab_size": len(vocab), **meta["tokens"]}


def load_prepared(prepared_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """``meta.json`` and each split's token ids (``ids``, int32)."""
    return read_prepared_splits(prepared_dir, "lm")
