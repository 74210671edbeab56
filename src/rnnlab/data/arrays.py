"""Prepared arrays larger than memory: ``.npy`` files written and read in chunks, mapped for
training.

``prepare`` appends chunks to an ``NpyWriter`` (the length is known only at the end), passes
over a file read back with ``read_chunks`` (plain reads: the pages do not stay in the process,
unlike a map read from end to end), and training opens it with ``open_mapped``, which touches
only the pages of the windows it reads. Memory then stays flat as the data grows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

# Items per chunk (2 MiB of int32): a chunk's transients (sorting, codes) stay small beside
# the ~110 MiB a stage process starts with, so peak memory does not depend on the data size.
CHUNK = 1 << 19
# Bytes per write. The page cache keeps a freshly written file in folios as large as its
# writes (up to 2 MiB on ext4), and Linux maps a whole folio into the process on a fault: with
# 16 MiB writes, reading 100 tokens from each of 64 rows made 128 MiB resident; 64 KiB writes
# bound what one mapped read costs (benchmarks/data_scale.py, docs/benchmarks.md).
WRITE_BLOCK = 1 << 16


class NpyWriter:
    """A 1-D ``.npy`` file of ``dtype`` grown by ``append``; the header's length is rewritten
    on ``close`` (numpy leaves room in the header for it to grow)."""

    def __init__(self, path: Path, dtype: np.dtype | type) -> None:
        self.path, self.dtype, self.length = path, np.dtype(dtype), 0
        self._file = open(path, "wb")  # noqa: SIM115  (closed by close(), also on errors)
        self._write_header()
        self._data_start = self._file.tell()

    def _write_header(self) -> None:
        header = {"descr": self.dtype.str, "fortran_order": False, "shape": (self.length,)}
        np.lib.format.write_array_header_1_0(self._file, header)

    def append(self, chunk: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(chunk, dtype=self.dtype)).cast("B")
        for start in range(0, len(data), WRITE_BLOCK):
            self._file.write(data[start : start + WRITE_BLOCK])
        self.length += len(chunk)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.seek(0)
        self._write_header()
        if self._file.tell() != self._data_start:  # cannot happen below 10**21 items
            raise RuntimeError(f"The .npy header of {self.path} grew while it was written.")
        self._file.close()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(
        self, kind: type | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def read_chunks(
    path: Path, start: int = 0, stop: int | None = None, chunk: int | None = None
) -> Iterator[np.ndarray]:
    """Items ``[start, stop)`` of a 1-D ``.npy`` file, ``chunk`` (default ``CHUNK``) at a time."""
    chunk = chunk or CHUNK
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_{version[1]}")
        shape, _, dtype = read_header(file)
        stop = shape[0] if stop is None else min(stop, shape[0])
        file.seek(start * dtype.itemsize, 1)
        for begin in range(start, stop, chunk):
            yield np.fromfile(file, dtype, count=min(chunk, stop - begin))


def open_mapped(path: Path) -> np.ndarray:
    """The array in ``path``, memory-mapped read-only: pages are read when indexed."""
    return np.load(path, mmap_mode="r")
