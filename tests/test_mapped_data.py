"""Data larger than memory: prepared arrays are streamed to ``.npy`` and memory-mapped.

The streamed LM prepare is checked against the whole-text computation it replaced, with chunks
small enough that words, lines, UTF-8 characters and splits are all cut at chunk ends; the
datasets are checked to read windows from the map, equal to the stacked windows of before.
"""

from __future__ import annotations

import functools
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.data import arrays, lm, prepare_task_data
from rnnlab.data.preprocessing import contiguous_split, make_windows
from rnnlab.data.text_tokens import Vocabulary, read_text, read_text_chunks, tokenize
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths
from rnnlab.tasks import get_task, ngram
from rnnlab.tasks.ngram import KneserNey, NgramBaselines

TEXT = (
    "Café au lait\r\nThe cat  sat.\n\nthe dog ran\u2028The end — “quoted” words\n"
    "def f(x):\n    return x\n" * 7 + "Übermäßig lange Zeilen\rand more The lines\n" * 5
)


def npy(tmp_path: Path, values: np.ndarray, chunk: int) -> Path:
    path = tmp_path / "values.npy"
    with arrays.NpyWriter(path, values.dtype) as out:
        for start in range(0, len(values), chunk):
            out.append(values[start : start + chunk])
    return path


def test_npy_written_in_chunks_loads_and_reads_back_in_chunks(tmp_path) -> None:
    values = np.arange(1000, dtype=np.int32) * 7
    path = npy(tmp_path, values, chunk=33)
    assert np.array_equal(np.load(path), values)
    chunks = list(arrays.read_chunks(path, 100, 901, 64))
    assert [len(c) for c in chunks] == [64] * 12 + [33]
    assert np.array_equal(np.concatenate(chunks), values[100:901])
    mapped = arrays.open_mapped(path)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, values)


def test_text_decoded_in_small_blocks_equals_the_whole_file(tmp_path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8", newline="")
    for block in (1, 2, 3, 5, 64):  # cuts 2-, 3- and 4-byte characters
        assert "".join(read_text_chunks(path, block)) == TEXT
    bad = TEXT.encode("utf-8")[:40] + b"\xe9 x\n"
    path.write_bytes(bad)
    line = bad[:40].count(b"\n") + 1
    for block in (3, 7, 1 << 22):
        with pytest.raises(DataError, match=rf"byte 40 \(line {line}\) cannot be decoded"):
            list(read_text_chunks(path, block))


def whole_text_prepare(text: str, level: str) -> tuple[Vocabulary, dict[str, np.ndarray], dict]:
    """What prepare computed on the text held whole, before streaming (the reference)."""
    tokens = tokenize(text, level)
    parts = contiguous_split(len(tokens), 0.05, 0.05, 2, "tokens")
    vocab = Vocabulary.build([tokens[parts["train"]]], level)
    ids = {s: np.asarray(vocab.encode(tokens[part]), np.int32) for s, part in parts.items()}
    starts = Counter()
    for line in text.splitlines():
        first = line.split(" ", 1)[0]
        if first[:1].isalpha():
            starts[first + (" " if level == "char" and len(line) > len(first) else "")] += 1
    warmup = lm.warmup_tokens(tokens[parts["train"]])
    return vocab, ids, {"line_starts": [w for w, _ in starts.most_common(2)], "warmup": warmup}


@pytest.mark.parametrize("level", ["char", "word"])
def test_streamed_lm_prepare_equals_the_whole_text_one(tmp_path, monkeypatch, compose_cfg, level):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8", newline="")
    monkeypatch.setattr(lm, "read_text_chunks", functools.partial(read_text_chunks, block=5))
    monkeypatch.setattr(arrays, "CHUNK", 7)
    cfg = compose_cfg(["task=lm", "data=text_file"], data={"path": str(path), "level": level})
    paths = RunPaths(tmp_path / "job")
    prepare_task_data(cfg, paths)

    vocab, ids, expected = whole_text_prepare(read_text(path), level)
    meta, mapped = lm.load_prepared(paths.prepared_dir)
    assert meta["vocab"]["tokens"] == vocab.tokens
    for split in ("train", "val", "test"):
        assert isinstance(mapped[split], np.memmap)
        assert np.array_equal(mapped[split], ids[split])
    assert meta["line_starts"] == expected["line_starts"]
    assert meta["warmup"] == ("" if level == "char" else " ").join(expected["warmup"])
    assert (paths.raw_dir / "corpus.txt").read_bytes() == path.read_bytes()
    assert not list(paths.prepared_dir.parent.glob(".scratch.tmp-*"))  # scratch files are gone


def test_forecast_windows_are_cut_from_the_memory_map(tmp_path, compose_cfg) -> None:
    cfg = compose_cfg(["task.lookback=52", "task.horizon=13"])
    paths = RunPaths(tmp_path)
    prepare_task_data(cfg, paths)
    data = get_task("forecast").load_data(cfg, paths)
    values = data.train.values
    assert isinstance(values, np.memmap) and Path(values.filename).name == "series.npy"
    # The stacked windows training held before, for the same start rows.
    x, y = make_windows(np.asarray(values), data.train.starts, 52, 13, [0])
    for i in (0, 17, len(data.train) - 1):
        item = data.train[i]
        assert torch.equal(item["x"], torch.from_numpy(x[i]))
        assert torch.equal(item["y"], torch.from_numpy(y[i]))
    # A spawned process (ddp_spawn, loader workers) maps the file again instead of a copy.
    again = pickle.loads(pickle.dumps(data.val))
    assert isinstance(again.values, np.memmap)
    assert torch.equal(again[5]["x"], data.val[5]["x"])


def test_lm_batches_read_the_memory_mapped_stream(tmp_path, compose_cfg) -> None:
    cfg = compose_cfg(
        ["task=lm", "data=pydoc_topics", "data.max_chars=20000", "trainer.batch_size=4"]
    )
    paths = RunPaths(tmp_path)
    prepare_task_data(cfg, paths)
    data = get_task("lm").load_data(cfg, paths)
    rows = data.train.rows
    assert isinstance(rows, np.memmap) and Path(rows.filename).name == "train.npy"
    stream = np.load(paths.prepared_dir / "train.npy")  # read whole, as before
    columns = len(stream) // 4
    item = data.train[4 * 3 + 2]  # window 3, row 2
    start = 2 * columns + 3 * cfg.task.bptt
    assert item["x"].dtype == torch.int64
    expected = stream[start : start + cfg.task.bptt].astype(np.int64)
    assert torch.equal(item["x"], torch.from_numpy(expected))


def test_ngram_baselines_counted_in_chunks_equal_one_pass(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    pattern = [1, 2, 3, 1, 4]
    stream = np.concatenate(
        [pattern if rng.random() < 0.8 else rng.integers(0, 6, 5) for _ in range(700)]
    ).astype(np.int32)
    train, val = stream[:3000], stream[3000:]

    def fitted() -> list[float]:
        bigram, kneser_ney = NgramBaselines(train, 6), KneserNey(train, 6, max_order=5)
        bigram.fit_weight(val)
        kneser_ney.fit_order(val)
        losses = [kneser_ney.loss(val, n) for n in range(1, 6)]
        return [bigram.unigram_loss(val), bigram.bigram_loss(val), bigram.weight, *losses]

    whole = fitted()
    monkeypatch.setattr(ngram, "CHUNK", 7)  # every gram and context cut somewhere
    assert fitted() == pytest.approx(whole, rel=1e-12)
