"""Speech-recognition data: recordings with transcripts in, feature frames and character ids out.

``data/raw/manifest.csv`` lists every recording (see ``rnnlab.data.audio_sets``);
``data/prepared/{train,val,test}.npz`` hold the utterances back to back (``features``: (sum T,
F) float16, normalised with training statistics; ``targets``: character ids, 1..V-1, 0 being
the CTC blank; ``offsets``/``target_offsets`` cut them apart; ``ids``, ``texts``, ``speakers``)
and ``meta.json`` the alphabet and the fitted feature pipeline, which the trained model keeps.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from rnnlab.data import read_prepared_splits, write_prepared
from rnnlab.data.audio_sets import SPLITS, corpus_digest, features_of, recordings
from rnnlab.data.speech_synth import sentence
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

TEXT = "transcript"
BLANK = "_"  # the CTC blank's printable name (id 0); never part of an alphabet


def normalise_transcript(text: str) -> str:
    """Lower case, single spaces, no leading or trailing space."""
    return re.sub(r"\s+", " ", str(text).lower()).strip()


def check_alphabet(texts: pd.Series, paths: pd.Series, alphabet: str) -> None:
    allowed = set(alphabet)
    for text, path in zip(texts, paths, strict=True):
        outside = sorted(set(text) - allowed)
        if outside:
            raise DataError(
                f"The transcript of {path} has character(s) {outside} outside data.alphabet "
                f"({alphabet!r}); spell them out (e.g. digits as words) or add them to "
                "data.alphabet."
            )


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    data = cfg.data
    if BLANK in data.alphabet or len(set(data.alphabet)) != len(data.alphabet):
        raise DataError(
            f"data.alphabet={data.alphabet!r} must list distinct characters, without {BLANK!r} "
            "(the CTC blank)."
        )
    generated = "asr_sentences" if data.source == "synth" else None
    manifest = recordings(data, paths, TEXT, generated, sentence)
    if generated is None:
        manifest[TEXT] = manifest[TEXT].map(normalise_transcript)
    check_alphabet(manifest[TEXT], manifest["path"], data.alphabet)
    pipeline, waves, features = features_of(manifest, paths.raw_dir, data)
    alphabet = [BLANK, *data.alphabet]
    lookup = {c: i for i, c in enumerate(alphabet)}
    is_split = {s: manifest["split"].to_numpy() == s for s in SPLITS}
    arrays = {}
    for split in SPLITS:
        rows = np.flatnonzero(is_split[split])
        part = manifest.iloc[rows]
        arrays[split] = _pack(
            [features[i] for i in rows],
            [[lookup[c] for c in text] for text in part[TEXT]],
            part,
        )
    seconds = {
        s: sum(len(w) for w, keep in zip(waves, is_split[s], strict=True) if keep)
        / pipeline.sample_rate
        for s in SPLITS
    }
    meta = {
        "task": "asr",
        "dataset": data.name,
        "alphabet": alphabet,
        "features": pipeline.to_dict(),
        "n_features": pipeline.n_features,
        "raw_sha256": corpus_digest(manifest),
        "counts": {s: len(arrays[s]["ids"]) for s in SPLITS},
        "hours": {s: round(seconds[s] / 3600, 4) for s in SPLITS},
        "speakers": {s: int(manifest.loc[is_split[s], "speaker"].nunique()) for s in SPLITS},
    }
    # Generated audio is cached in data/raw as it is made; user recordings get their manifest.
    raw = None if data.source == "synth" else {"manifest.csv": manifest.to_csv(index=False)}
    write_prepared(paths, meta, arrays, raw)
    return {**meta["counts"], "hours": meta["hours"]}


def _pack(features: list[np.ndarray], targets: list[list[int]], part: pd.DataFrame) -> dict:
    return {
        "features": np.concatenate(features).astype(np.float16),
        "offsets": np.cumsum([0, *(len(f) for f in features)]).astype(np.int64),
        "targets": np.asarray([i for t in targets for i in t], dtype=np.int16),
        "target_offsets": np.cumsum([0, *(len(t) for t in targets)]).astype(np.int64),
        "ids": np.asarray(part["id"].astype(str), dtype=str),
        "texts": np.asarray(part[TEXT].astype(str), dtype=str),
        "speakers": np.asarray(part.get("speaker", [""] * len(part)), dtype=str),
    }


def load_prepared(prepared_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    return read_prepared_splits(prepared_dir, "asr")


def utterances(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The split's utterances as (T_i, F) float32 arrays."""
    cut = arrays["offsets"]
    return [arrays["features"][a:b].astype(np.float32) for a, b in pairwise(cut)]


def target_ids(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    cut = arrays["target_offsets"]
    return [arrays["targets"][a:b].astype(np.int64) for a, b in pairwise(cut)]
