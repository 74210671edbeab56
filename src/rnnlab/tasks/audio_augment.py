"""Training-time augmentation of audio features, shared by task=asr and task=classify on audio:
SpecAugment masks and vocal-tract-length perturbation (a random warp of the mel axis)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnlab.data.audio import freq_warp, spec_augment

MASK_KEYS = ("freq_masks", "freq_width", "time_masks", "time_width")


def augment_settings(task: Any) -> dict[str, Any] | None:
    """The augmentation a task config asks for (``task.spec_augment`` with its mask widths,
    ``task.freq_warp``), or None for none."""
    masks = {key: int(task[key]) for key in MASK_KEYS} if task.spec_augment else None
    warp = float(task.freq_warp)
    if masks is None and warp == 0:
        return None
    return {"masks": masks, "freq_warp": warp}


def augmented(frames: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """One example's (T, F) real frames, freshly warped and masked, drawn from torch's seeded
    RNG (so ``seed`` and the data loader's worker seeding make them reproducible)."""
    rng = np.random.default_rng(int(torch.randint(2**31, ())))
    if settings["freq_warp"]:
        frames = freq_warp(frames, 1.0 + rng.uniform(-1, 1) * settings["freq_warp"])
    if settings["masks"]:
        frames = spec_augment(frames, rng, **settings["masks"])
    return frames
