"""Batch prediction: a CSV or text file in, predictions with the input's identifiers out.

    python -m rnnlab.predict --model models --input history.csv --output forecasts.csv \\
        [--group-column series] [--id-column id ...] [--chunksize 10000]

The model is a trained-model directory, or an MLflow model URI (``models:/<name>@<alias>``,
``runs:/<run id>/model``) whose weights are downloaded and loaded weights-only: nothing is
unpickled. The task's ``predict_frame`` does the task-specific work; this module only streams:

- ``--group-column C``: rows sharing C (contiguous in the file, e.g. one time series or one
  sequence in long format) are never split. A forecasting model gets one series at a time and
  its forecast is prefixed with the series id; other tasks get batches of whole groups.
- without it, a forecasting file is one series; any other task gets ``--chunksize`` rows at a
  time and must return one row per input row, written beside ``--id-column`` (or the row number).
- a ``.txt`` file holds one raw string per line (text classification); ids are line numbers.
- a folder of ``.wav``/``.flac`` files (speech models): each file is one input row (``audio``),
  written beside its ``file`` name relative to the folder.

Memory stays bounded by one chunk plus one group, so files larger than memory stream through.
The output appears only when the whole file succeeded.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from rnnlab.cli import user_errors_exit
from rnnlab.errors import DataError
from rnnlab.io import atomic_file
from rnnlab.model_store import TrainedModel, load_trained

AUDIO_ID = "file"  # the id column of predictions for a folder of audio files


def load_model(source: str) -> TrainedModel:
    """A trained-model directory, or an MLflow URI of a model logged by rnnlab."""
    if ":/" not in source:
        if not Path(source).is_dir():
            raise DataError(
                f"--model {source!r} is neither a model directory nor an MLflow URI "
                "(runs:/<run id>/model, models:/<name>@<alias>)."
            )
        return load_trained(Path(source))
    import mlflow

    from rnnlab.tracking import tracking_uri

    uri = tracking_uri()
    with tempfile.TemporaryDirectory(prefix="rnnlab-model-") as scratch:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=scratch, tracking_uri=uri, registry_uri=uri
            )
        except Exception as err:  # MLflow raises several types for an unknown name/alias/run
            raise DataError(f"Cannot fetch model {source!r}: {err}") from err
        return load_trained(Path(local) / "artifacts" / "model_dir")  # read into memory


def _csv_chunks(path: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    yield from pd.read_csv(path, chunksize=chunksize)


def _text_chunks(path: Path, chunksize: int, column: str) -> Iterator[pd.DataFrame]:
    """One raw string per line; the index is the 1-based line number."""
    lines: list[str] = []
    first = 1
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            lines.append(line.rstrip("\r\n"))
            if len(lines) == chunksize:
                yield pd.DataFrame({column: lines}, index=range(first, first + len(lines)))
                first, lines = first + len(lines), []
    if lines:
        yield pd.DataFrame({column: lines}, index=range(first, first + len(lines)))


def _audio_chunks(folder: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    """The folder's .wav/.flac files (recursively, sorted) as ``file`` and ``audio`` columns."""
    from rnnlab.data.audio import AUDIO_EXTENSIONS

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise DataError(f"{folder} holds no .wav or .flac files.")
    for start in range(0, len(files), chunksize):
        part = files[start : start + chunksize]
        names = [str(p.relative_to(folder)) for p in part]
        yield pd.DataFrame({AUDIO_ID: names, "audio": [str(p) for p in part]})


def _groups(chunks: Iterator[pd.DataFrame], column: str) -> Iterator[tuple[Any, pd.DataFrame]]:
    """Whole groups of contiguous rows sharing ``column``, however the chunks cut them."""
    seen: set[Any] = set()
    key, pending = None, []
    for chunk in chunks:
        if column not in chunk.columns:
            raise DataError(
                f"--group-column {column!r} is not a column of the input; it has "
                f"{list(chunk.columns)}."
            )
        for value, part in chunk.groupby(column, sort=False, dropna=False):
            if value == key:
                pending.append(part)
                continue
            if pending:
                yield key, pd.concat(pending)
            if value in seen:
                raise DataError(
                    f"Rows of {column}={value!r} are not contiguous in the input; sort the file "
                    f"by {column!r} (each group must be one block of rows)."
                )
            seen.add(value)
            key, pending = value, [part]
    if pending:
        yield key, pd.concat(pending)


def _inputs(
    chunks: Iterator[pd.DataFrame], group_column: str | None, per_sequence: bool, chunksize: int
) -> Iterator[tuple[Any, pd.DataFrame]]:
    """(group id or None, frame) pairs, each one call of ``predict_frame``."""
    if group_column is None:
        if per_sequence:  # the whole file is one series (held in memory, like any one group)
            yield None, pd.concat(list(chunks))
        else:
            yield from ((None, chunk) for chunk in chunks)
        return
    if per_sequence:
        yield from _groups(chunks, group_column)
        return
    batch: list[pd.DataFrame] = []
    rows = 0
    for _, group in _groups(chunks, group_column):
        batch.append(group)
        rows += len(group)
        if rows >= chunksize:
            yield None, pd.concat(batch)
            batch, rows = [], 0
    if batch:
        yield None, pd.concat(batch)


def _with_ids(
    out: pd.DataFrame,
    frame: pd.DataFrame,
    key: Any,
    per_row: bool,
    group_column: str | None,
    id_columns: list[str],
    index_name: str,
) -> pd.DataFrame:
    """Prefix the identifiers that tie each prediction to its input.

    Per-row predictions get the ``id_columns`` (or the row number); a group predicted alone (one
    series) gets its group id; batches of whole groups come back from the task with their ids.
    """
    out = out.reset_index(drop=True)
    if not per_row:
        if key is not None and group_column not in out.columns:
            out.insert(0, group_column, key)
        return out
    if len(out) != len(frame):
        raise DataError(
            f"The model returned {len(out)} rows for {len(frame)} input rows; if several rows "
            "form one sequence, name the column that identifies it with --group-column."
        )
    if id_columns:
        ids = frame[[c for c in id_columns if c not in out.columns]]
    else:
        ids = pd.DataFrame({index_name: frame.index.to_numpy()})
    return pd.concat([ids.reset_index(drop=True), out], axis=1)


def predict_file(
    trained: TrainedModel,
    input_path: Path,
    output_path: Path,
    *,
    group_column: str | None = None,
    id_columns: list[str] | None = None,
    chunksize: int = 10_000,
    text_column: str | None = None,
) -> int:
    """Stream ``input_path`` through the model into ``output_path``; return rows written."""
    from rnnlab.tasks import get_task

    task = get_task(trained.cfg.task.name)
    per_sequence = task.predict_unit == "sequence"  # see Task.predict_unit
    id_columns = id_columns or []
    if not input_path.exists():
        raise DataError(f"Input file {input_path} does not exist.")
    is_text, is_folder = input_path.suffix == ".txt", input_path.is_dir()
    if (is_text or is_folder) and group_column:
        raise DataError("A .txt file or a folder of audio files has no --group-column.")
    column = text_column or trained.meta.get("text_column", "text")
    if is_folder:
        chunks = _audio_chunks(input_path, chunksize)
        id_columns = id_columns or [AUDIO_ID]
    elif is_text:
        chunks = _text_chunks(input_path, chunksize, column)
    else:
        chunks = _csv_chunks(input_path, chunksize)
    index_name = "line" if is_text else "row"
    per_row = group_column is None and not per_sequence
    written = 0
    with atomic_file(output_path) as handle:
        for key, frame in _inputs(chunks, group_column, per_sequence, chunksize):
            missing = [c for c in id_columns if c not in frame.columns]
            if missing:
                raise DataError(f"--id-column {missing} not in the input {list(frame.columns)}.")
            try:
                out = task.predict_frame(trained, frame)
            except DataError as err:
                where = f"{group_column}={key!r}: " if key is not None else ""
                raise DataError(f"{where}{err}") from err
            out = _with_ids(out, frame, key, per_row, group_column, id_columns, index_name)
            out.to_csv(handle, header=written == 0, index=False)
            written += len(out)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="models", help="model dir, models:/..., runs:/...")
    parser.add_argument(
        "--input", type=Path, required=True, help=".csv, .txt (one per line), or a folder of .wav"
    )
    parser.add_argument("--output", type=Path, required=True, help="CSV of predictions")
    parser.add_argument("--group-column", default=None, help="rows of one series / sequence")
    parser.add_argument("--id-column", action="append", default=[], help="copied to the output")
    parser.add_argument("--chunksize", type=int, default=10_000, help="rows read at a time")
    parser.add_argument("--text-column", default=None, help="column name for .txt lines")
    args = parser.parse_args(argv)
    with user_errors_exit():
        if args.chunksize < 1:
            raise DataError(f"--chunksize must be at least 1, got {args.chunksize}.")
        rows = predict_file(
            load_model(args.model),
            args.input,
            args.output,
            group_column=args.group_column,
            id_columns=args.id_column,
            chunksize=args.chunksize,
            text_column=args.text_column,
        )
    print(f"wrote {rows} prediction row(s) to {args.output}")


if __name__ == "__main__":
    main()
