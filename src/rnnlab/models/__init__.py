"""Neural-network building blocks: recurrent encoders, attention, baselines and the factory."""

from rnnlab.models.attention import (
    ATTENTION_KINDS,
    AdditiveAttention,
    AttentionPooling,
    DotProductAttention,
    GeneralAttention,
    MultiHeadAttention,
    build_attention,
    lengths_to_mask,
)
from rnnlab.models.baselines import MLPEncoder, TransformerEncoderBaseline
from rnnlab.models.encoders import CELLS, RecurrentEncoder, State
from rnnlab.models.init import INIT_SCHEMES, init_weights
from rnnlab.models.networks import ARCHS, SequenceNetwork, build_network, count_parameters

__all__ = [
    "ARCHS",
    "ATTENTION_KINDS",
    "CELLS",
    "INIT_SCHEMES",
    "AdditiveAttention",
    "AttentionPooling",
    "DotProductAttention",
    "GeneralAttention",
    "MLPEncoder",
    "MultiHeadAttention",
    "RecurrentEncoder",
    "SequenceNetwork",
    "State",
    "TransformerEncoderBaseline",
    "build_attention",
    "build_network",
    "count_parameters",
    "init_weights",
    "lengths_to_mask",
]
