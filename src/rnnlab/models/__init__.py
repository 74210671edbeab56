"""Neural-network building blocks: recurrent encoders, attention, baselines and the factory.

Attributes are imported on first use, so ``rnnlab.models.names`` (the allowed option values,
read by the config check) can be imported without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "rnnlab.models.names": ("ARCHS", "ATTENTION_KINDS", "INIT_SCHEMES", "RECURRENT_ARCHS"),
    "rnnlab.models.attention": (
        "AdditiveAttention",
        "AttentionPooling",
        "DotProductAttention",
        "GeneralAttention",
        "MultiHeadAttention",
        "build_attention",
        "lengths_to_mask",
    ),
    "rnnlab.models.baselines": ("MLPEncoder", "TransformerEncoderBaseline"),
    "rnnlab.models.encoders": ("RecurrentEncoder", "State"),
    "rnnlab.models.ensemble": ("ProbabilityEnsemble",),
    "rnnlab.models.init": ("init_weights",),
    "rnnlab.models.networks": ("SequenceNetwork", "build_network", "count_parameters"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'rnnlab.models' has no attribute {name!r}")
    return getattr(import_module(_MODULE_OF[name]), name)
