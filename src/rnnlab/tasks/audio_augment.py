"""SpecAugment on training batches, shared by task=asr and task=classify on audio."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnnlab.data.audio import spec_augment

MASK_KEYS = ("freq_masks", "freq_width", "time_masks", "time_width")


def mask_settings(task: Any) -> dict[str, int] | None:
    """The masks a task config asks for (``task.spec_augment`` and its widths), or None."""
    if not task.spec_augment:
        return None
    return {key: int(task[key]) for key in MASK_KEYS}


def masked(frames: np.ndarray, settings: dict[str, int]) -> np.ndarray:
    """Fresh SpecAugment masks on one example's (T, F) real frames, drawn from torch's seeded
    RNG (so ``seed`` and the data loader's worker seeding make them reproducible)."""
    rng = np.random.default_rng(int(torch.randint(2**31, ())))
    return spec_augment(frames, rng, **settings)
