"""The one batched inference loop: a network over many inputs, in eval mode, without gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

BATCH = 512  # rows per forward pass: bounds memory on long test splits


def predict_batches(
    model: nn.Module,
    *inputs: Tensor,
    step: Callable[..., Any] | None = None,
    batch_size: int = BATCH,
) -> list[Any]:
    """``step(*batch)`` (default: ``model(*batch)``) for consecutive row batches of ``inputs``.

    Returns the per-batch outputs in order: ``torch.cat`` them for tensors.
    """
    model.eval()
    with torch.no_grad():
        batches = zip(*(t.split(batch_size) for t in inputs), strict=True)
        return [(step or model)(*batch) for batch in batches]
