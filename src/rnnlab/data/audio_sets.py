"""Collections of labelled recordings: generated corpora, your manifests and folders, splits.

Every source ends as one table, ``data/raw/manifest.csv``: ``id, path, <text column>, speaker,
split`` (plus the synthesis settings for generated speech), the text column being
``transcript`` (speech recognition) or ``label`` (spoken-word classification). Generated audio
is cached as FLAC under ``data/raw/audio/`` and re-used while the corpus settings are unchanged;
your recordings stay where they are (the manifest records their SHA-256).

Every recording is checked before anything is written, so a missing, unreadable, empty or silent
file, or an empty transcript, stops ``prepare`` with the file named and earlier results intact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnlab.data.audio import AUDIO_EXTENSIONS, FeaturePipeline, decode_audio
from rnnlab.data.checks import require_columns
from rnnlab.data.sources import read_csv, resolve_user_path
from rnnlab.data.speech_synth import SynthJob, add_noise, speakers_by_split, synthesize_files
from rnnlab.errors import DataError
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.paths import RunPaths

SPLITS = ("train", "val", "test")
MANIFEST, CORPUS_SPEC = "manifest.csv", "corpus.json"
COPY = "noisy_copy"  # the manifest column numbering noisy training copies


def feature_pipeline(data: Any) -> FeaturePipeline:
    """The (not yet fitted) feature pipeline a data config asks for."""
    return FeaturePipeline(
        sample_rate=data.sample_rate,
        kind=data.features,
        n_mels=data.n_mels,
        n_mfcc=data.n_mfcc,
        win_ms=data.win_ms,
        hop_ms=data.hop_ms,
        cmvn=data.cmvn,
    )


# --- generated speech ---------------------------------------------------------------------


def generated_manifest(
    raw_dir: Path,
    spec: dict[str, Any],
    make_text: Callable[[np.random.Generator], str],
    text_column: str,
) -> pd.DataFrame:
    """The generated corpus described by ``spec`` in ``raw_dir``: re-used if ``raw_dir`` already
    holds exactly this corpus, else synthesised (clean FLAC at ``spec["sample_rate"]``).

    ``spec``: seed, sample_rate, counts per split, val/test voice variants, rate and pitch
    ranges, SNRs. Each utterance gets a speaker of its split, a rate, a pitch and an SNR; the
    noise itself is added when features are computed (``load_audio``), seeded per utterance.
    """
    spec_path = raw_dir / CORPUS_SPEC
    if spec_path.exists() and read_json(spec_path) == spec and (raw_dir / MANIFEST).exists():
        manifest = pd.read_csv(raw_dir / MANIFEST, keep_default_na=False)
        if all((raw_dir / p).exists() for p in manifest["path"]):
            return manifest
    rng = np.random.default_rng(spec["seed"])
    speakers = speakers_by_split(spec["seed"], spec["val_voices"], spec["test_voices"])
    rows, jobs = [], []
    with atomic_dir(raw_dir) as staging:
        (staging / "audio").mkdir()
        for split in SPLITS:
            for i in range(spec[f"n_{split}"]):
                speaker = speakers[split][int(rng.integers(len(speakers[split])))]
                text = make_text(rng)
                rate = int(rng.integers(spec["rate"][0], spec["rate"][1] + 1))
                pitch = int(rng.integers(spec["pitch"][0], spec["pitch"][1] + 1))
                snr = float(rng.choice(spec["snr_db"]))
                path = f"audio/{split}_{i:05d}.flac"
                jobs.append(SynthJob(str(staging / path), text, speaker, rate, pitch, len(jobs)))
                rows.append((f"{split}_{i:05d}", path, text, speaker.name, split, rate, pitch, snr))
        synthesize_files(jobs, spec["sample_rate"])
        columns = ["id", "path", text_column, "speaker", "split", "rate", "pitch", "snr_db"]
        manifest = pd.DataFrame(rows, columns=columns)
        manifest.to_csv(staging / MANIFEST, index=False)
        write_json(staging / CORPUS_SPEC, spec)
    return manifest


# --- your recordings ----------------------------------------------------------------------


def recordings(
    data: Any,
    paths: RunPaths,
    column: str,
    generated: str | None,
    make_text: Callable[[np.random.Generator], str],
) -> pd.DataFrame:
    """The manifest with splits: speech generated as corpus ``generated`` (``synth_spec``),
    cached in ``data/raw``, or, with ``generated=None``, your recordings."""
    if generated is None:
        manifest = user_recordings(data, paths.root, column)
    else:
        manifest = generated_manifest(paths.raw_dir, synth_spec(data, generated), make_text, column)
    return with_noisy_copies(manifest, data.noisy_copies, list(data.snr_db), data.seed)


def with_noisy_copies(
    manifest: pd.DataFrame, copies: int, snr_db: list[float], seed: int
) -> pd.DataFrame:
    """``manifest`` and ``copies`` more rows per training recording (multi-condition training):
    each copy gets fresh white noise at an SNR drawn from ``snr_db``, added with the rest of the
    noise in ``load_waves``. The copies go at the end, so every original row keeps its position
    and with it its noise; ``noisy_copy`` numbers them (0: the recording as it is)."""
    if copies == 0:
        return manifest
    train = manifest[manifest["split"] == "train"]
    rng = np.random.default_rng([seed, 104729])
    extra = [
        train.assign(
            id=train["id"].astype(str) + f"~noisy{k}",
            snr_db=rng.choice(np.asarray(snr_db, dtype=float), size=len(train)),
            **{COPY: k},
        )
        for k in range(1, copies + 1)
    ]
    return pd.concat([manifest.assign(**{COPY: 0}), *extra], ignore_index=True)


def features_of(
    manifest: pd.DataFrame, raw_dir: Path, data: Any
) -> tuple[FeaturePipeline, list[np.ndarray], list[np.ndarray]]:
    """The fitted feature pipeline, every recording decoded (and checked), and its normalised
    features; the normaliser sees the training split only."""
    pipeline = feature_pipeline(data)
    waves = load_waves(manifest, raw_dir, pipeline)
    originals = manifest[COPY] == 0 if COPY in manifest else True
    pipeline, features = fitted_features(
        waves, (manifest["split"] == "train") & originals, pipeline
    )
    return pipeline, waves, features


def user_recordings(data: Any, root: Path, text_column: str) -> pd.DataFrame:
    """Your recordings (``data.path``) with their split (``assign_splits``) and file hashes."""
    manifest = user_manifest(data.path, root, text_column)
    manifest["split"] = assign_splits(manifest, data.val_fraction, data.test_fraction, data.seed)
    return with_sha256(manifest)


def user_manifest(path_setting: str | None, root: Path, text_column: str) -> pd.DataFrame:
    """Your recordings as a manifest table with absolute paths.

    ``data.path`` is either a CSV/TSV manifest (columns ``path``, the text column, optionally
    ``speaker``; paths relative to the manifest's folder) or a folder: for transcripts, audio
    files with a same-named ``.txt`` beside them; for labels, one sub-folder per label. In a
    folder, a transcript's speaker is the sub-folder the file is in (if any).
    """
    path = resolve_user_path(path_setting, root, "path", folder_ok=True)
    if path.is_dir():
        frame = _folder_manifest(path, text_column)
    else:
        frame = read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        require_columns(
            frame,
            ["path", text_column],
            str(path),
            f"A manifest needs `path` and `{text_column}` (optionally `speaker`).",
        )
        frame = frame.assign(path=[str((path.parent / str(p)).resolve()) for p in frame["path"]])
    frame[text_column] = frame[text_column].fillna("").astype(str)
    speakers = frame["speaker"] if "speaker" in frame.columns else pd.Series("", frame.index)
    frame["speaker"] = speakers.fillna("").astype(str)
    empty = frame.index[frame[text_column].str.strip() == ""]
    if len(empty):
        raise DataError(
            f"{path}: the {text_column} of {frame.loc[empty[0], 'path']} is empty "
            f"({len(empty)} recording(s) without one); fill it in or remove the recording."
        )
    frame.insert(0, "id", [Path(p).stem for p in frame["path"]])
    if frame["id"].duplicated().any():
        frame["id"] = [f"{i:05d}_{stem}" for i, stem in enumerate(frame["id"])]
    return frame


def _folder_manifest(folder: Path, text_column: str) -> pd.DataFrame:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise DataError(f"{folder} holds no .wav or .flac files.")
    rows = []
    for file in files:
        parent = file.parent.relative_to(folder)
        if text_column == "label":
            if parent == Path("."):
                raise DataError(
                    f"{file} is not in a label sub-folder; put each recording under "
                    f"{folder}/<label>/ (or use a manifest with a `label` column)."
                )
            rows.append({"path": str(file), "label": parent.parts[0]})
            continue
        transcript = file.with_suffix(".txt")
        if not transcript.exists():
            raise DataError(
                f"{file} has no transcript: put its text in {transcript.name} beside it."
            )
        speaker = parent.parts[0] if parent != Path(".") else ""
        text = transcript.read_text(encoding="utf-8").strip()
        rows.append({"path": str(file), text_column: text, "speaker": speaker})
    return pd.DataFrame(rows)


def with_sha256(frame: pd.DataFrame) -> pd.DataFrame:
    """The manifest plus each file's SHA-256 (what DVC cannot see for files outside the repo)."""
    digests = []
    for path in frame["path"]:
        try:
            digests.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
        except OSError:
            raise DataError(f"Audio file {path} not found or unreadable; check the path.") from None
    return frame.assign(sha256=digests)


def assign_splits(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> pd.Series:
    """Split per speaker when speakers are known (no voice in two splits), else per recording.

    Speakers (or recordings) are shuffled and taken for test until about ``test_fraction`` of
    the recordings is reached, then for validation.
    """
    known = bool((frame["speaker"] != "").all())
    groups = frame["speaker"] if known else pd.Series(frame.index.astype(str), index=frame.index)
    sizes = groups.value_counts().sort_index()
    order = np.random.default_rng(seed).permutation(sizes.index.to_numpy())
    total, taken, assignment = len(frame), 0, {}
    for group in order:
        if taken < test_fraction * total:
            assignment[group] = "test"
        elif taken < (test_fraction + val_fraction) * total:
            assignment[group] = "val"
        else:
            assignment[group] = "train"
        taken += int(sizes[group])
    split = groups.map(assignment)
    counts = split.value_counts()
    for name in SPLITS:
        if counts.get(name, 0) == 0:
            unit = "speakers" if known else "recordings"
            raise DataError(
                f"The {name} split is empty ({total} recordings, {len(sizes)} {unit}); add "
                f"recordings or adjust data.val_fraction/data.test_fraction."
            )
    return split


# --- features -------------------------------------------------------------------------------


def load_waves(manifest: pd.DataFrame, raw_dir: Path, pipeline: FeaturePipeline) -> list:
    """Every recording decoded (and checked) at the pipeline's rate, noise added where the
    manifest asks for it (generated speech, seeded by position)."""
    waves = []
    for i, row in enumerate(manifest.itertuples(index=False)):
        path = Path(row.path)
        wave = decode_audio(
            path if path.is_absolute() else raw_dir / path,
            pipeline.sample_rate,
            min_samples=pipeline.min_samples,
        )
        snr = getattr(row, "snr_db", None)
        if snr is not None and np.isfinite(snr):
            wave = add_noise(wave, float(snr), np.random.default_rng([i, 7919]))
        waves.append(wave)
    return waves


def fitted_features(
    waves: list[np.ndarray], fit_on: pd.Series, pipeline: FeaturePipeline
) -> tuple[FeaturePipeline, list[np.ndarray]]:
    """Normalised features of every wave, the normaliser fitted on the ``fit_on`` ones only:
    the training recordings as they are (not their noisy copies, so copies add training data
    and change nothing else)."""
    raw = [pipeline.raw_features(w) for w in waves]
    fitted = pipeline.fit([f for f, keep in zip(raw, fit_on, strict=True) if keep])
    return fitted, [fitted.normalise(f) for f in raw]


def corpus_digest(manifest: pd.DataFrame) -> str:
    """The digest of the recordings themselves: training copies (``data.noisy_copies``) are
    left out, so runs with and without them compare as runs on the same data."""
    if COPY in manifest:
        manifest = manifest[manifest[COPY] == 0].drop(columns=COPY)
        if manifest["snr_db"].isna().all():  # your recordings: the column came with the copies
            manifest = manifest.drop(columns="snr_db")
    return hashlib.sha256(manifest.to_csv(index=False).encode()).hexdigest()


def example_audio(raw_dir: Path, sample_rate: int, count: int = 2) -> pd.DataFrame:
    """A few test recordings as base64 WAV in an ``audio`` column: a logged model's input
    example, the way a client sends audio over HTTP."""
    from rnnlab.data.audio import encode_wav

    manifest = pd.read_csv(raw_dir / MANIFEST, keep_default_na=False)
    files = manifest.loc[manifest["split"] == "test", "path"].head(count)
    waves = [decode_audio(raw_dir / p, sample_rate) for p in files]  # absolute stays absolute
    return pd.DataFrame({"audio": [encode_wav(w, sample_rate) for w in waves]})


def synth_spec(data: Any, kind: str) -> dict[str, Any]:
    """What determines a generated corpus; its cached audio is re-used while this is equal."""
    return {
        "kind": kind,
        "seed": data.seed,
        "sample_rate": data.sample_rate,
        **{f"n_{s}": data[f"n_{s}"] for s in SPLITS},
        "val_voices": data.val_voices,
        "test_voices": data.test_voices,
        "rate": list(data.rate),
        "pitch": list(data.pitch),
        "snr_db": list(data.snr_db),
    }
