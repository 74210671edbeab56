"""Spoken-word classification data: generated command words or your labelled recordings.

The words (``data=spoken_words``: the ten digits and ten commands such as "yes", "stop",
"left") are synthesised like the speech-recognition corpus, with unseen voices in the test
split; your recordings (``data=audio_folder``) are one sub-folder per label or a manifest with
a ``label`` column, split by speaker when every recording names one. Either way the result is
the classification format: padded (N, T, F) feature frames, lengths and class indices.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rnnlab.data.audio_sets import SPLITS, corpus_digest, features_of, recordings
from rnnlab.data.classify import _check_labels_known, sorted_classes
from rnnlab.data.preprocessing import pad
from rnnlab.data.speech_synth import COMMAND_WORDS, DIGITS
from rnnlab.paths import RunPaths

LABEL = "label"
WORDS = (*DIGITS, *COMMAND_WORDS)


def prepare_audio(
    data: DictConfig, paths: RunPaths
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str] | None]:
    """Arrays per split, metadata and the raw files to keep (your manifest; none for the
    generated words, cached in ``data/raw`` as they are made).
    A validation or test label that training never saw is refused."""
    generated = "spoken_words" if data.source == "spoken_words" else None
    words = itertools.cycle(WORDS)  # every class equally often in every split
    manifest = recordings(data, paths, LABEL, generated, lambda _rng: next(words))
    pipeline, _, features = features_of(manifest, paths.raw_dir, data)
    is_split = {s: manifest["split"].to_numpy() == s for s in SPLITS}
    classes = sorted_classes(list(manifest.loc[is_split["train"], LABEL].astype(str)))
    lookup = {c: i for i, c in enumerate(classes)}
    arrays = {}
    for split in SPLITS:
        part = manifest[is_split[split]]
        labels, ids = list(part[LABEL].astype(str)), list(part["path"].astype(str))
        _check_labels_known(labels, ids, classes, f"the {split} split")
        x, lengths = pad([features[i] for i in np.flatnonzero(is_split[split])])
        y = np.array([lookup[label] for label in labels], dtype=np.int64)
        arrays[split] = {"x": x, "lengths": lengths, "y": y, "ids": np.asarray(ids, dtype=str)}
    meta = {
        "kind": "audio",
        "classes": classes,
        "features": pipeline.to_dict(),
        "n_features": pipeline.n_features,
        "raw_sha256": corpus_digest(manifest),
    }
    # Generated recordings are cached in data/raw as they are made; yours get their manifest.
    raw = None if data.source == "spoken_words" else {"manifest.csv": manifest.to_csv(index=False)}
    return arrays, meta, raw
