"""Sequence-to-vector networks (encoder + pooling + linear head) and their factory.

``build_network`` is the one entry point the training code uses: it turns an architecture name and
flat hyper-parameters (as they come from a config) into a ready, initialised ``nn.Module`` mapping
(B, T, F) [+ lengths] -> (B, output_size). The encoders themselves stay task-agnostic so other
heads (language models, seq2seq) can reuse them.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from rnnlab.models.attention import AttentionPooling, lengths_to_mask
from rnnlab.models.baselines import LinearEncoder, MLPEncoder, TransformerEncoderBaseline
from rnnlab.models.encoders import RecurrentEncoder
from rnnlab.models.init import init_weights
from rnnlab.models.names import ARCHS, RECURRENT_ARCHS, SEGMENT_ARCHS
from rnnlab.models.segments import SegmentEmbedding


class SequenceNetwork(nn.Module):
    """Encoder -> fixed-size features (B, D) -> linear head (B, output_size).

    For a ``RecurrentEncoder`` the features are either its ``last`` summary or, if ``pooling`` is
    given, attention over all its outputs with ``last`` as the query. Other encoders (MLP,
    Transformer) already return (B, D) and are used as is. With ``segments``, the encoder reads
    embedded segments of the window (SegRNN, PatchTST) instead of its single steps.
    """

    def __init__(
        self,
        encoder: nn.Module,
        output_size: int,
        pooling: AttentionPooling | None = None,
        segments: SegmentEmbedding | None = None,
    ) -> None:
        super().__init__()
        self.segments = segments
        self.encoder = encoder
        self.pooling = pooling
        self.head = nn.Linear(encoder.output_size, output_size)

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x (B, T, F) -> features (B, D) fed to the head (useful for probing/embeddings)."""
        if self.segments is not None:
            if lengths is not None and bool((lengths != x.shape[1]).any()):
                raise ValueError("Segment tokens need unpadded windows; got padded sequences.")
            x, lengths = self.segments(x), None  # (B, N, D)
        if not isinstance(self.encoder, RecurrentEncoder):
            return self.encoder(x, lengths)  # (B, D)
        outputs, last, _ = self.encoder(x, lengths)  # (B, T, D), (B, D)
        if self.pooling is None:
            return last
        mask = None if lengths is None else lengths_to_mask(lengths.to(x.device), x.size(1))
        context, _ = self.pooling(outputs, last, mask)  # (B, D)
        return context

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.encode(x, lengths))  # (B, output_size)


def build_network(
    arch: str,
    input_size: int,
    output_size: int,
    seq_len: int | None = None,
    *,
    init: str = "default",
    attention: str | None = None,
    segment_len: int | None = None,
    hidden_size: int = 64,
    num_heads: int = 4,
    **encoder_options: Any,
) -> SequenceNetwork:
    """Build an initialised sequence-to-vector network.

    Args:
        arch: one of ``ARCHS``.
        input_size: features per time step F.
        output_size: size of the prediction (e.g. forecast horizon or number of classes).
        seq_len: window length T; required by ``mlp`` and ``linear`` (fixed windows); the
            longest lag ``init="chrono"`` prepares recurrent gates for.
        init: weight init scheme (see ``rnnlab.models.names.INIT_SCHEMES``), applied to the
            recurrent layers and every ``nn.Linear`` of the network.
        attention: ``None`` (use the last hidden state) or one of ``ATTENTION_KINDS`` to pool
            the recurrent outputs; recurrent archs only.
        segment_len: recurrent archs and the Transformer: read the window as embedded segments
            of this many steps (SegRNN / PatchTST tokens) instead of single steps.
        hidden_size: recurrent hidden size / MLP width / Transformer d_model / segment width.
        num_heads: heads for ``attention="multihead"`` and for the Transformer.
        encoder_options: the rest of the encoder's options, see ``build_encoder``.
    """
    bidirectional = encoder_options.get("bidirectional", False)
    nonlinearity = encoder_options.get("nonlinearity", "tanh")
    variant = encoder_options.get("variant", "nlinear")
    # Each part checks its own options (the encoder its cell and nonlinearity, attention its
    # kind, the MLP its activation, init_weights its scheme); here only the arch, and options an
    # arch would silently ignore, which are configuration mistakes.
    if arch not in ARCHS:
        raise ValueError(f"Unknown arch {arch!r}; choose one of {ARCHS}.")
    if arch not in RECURRENT_ARCHS and (attention is not None or bidirectional):
        raise ValueError(
            f"attention/bidirectional only apply to recurrent archs {RECURRENT_ARCHS}, "
            f"not {arch!r}."
        )
    if arch != "rnn" and nonlinearity != "tanh":
        raise ValueError(
            f"nonlinearity={nonlinearity!r} only applies to arch='rnn', not {arch!r}; "
            "use nonlinearity='tanh'."
        )
    if segment_len is not None and arch not in SEGMENT_ARCHS:
        raise ValueError(f"segment_len applies to {SEGMENT_ARCHS}, not {arch!r}.")
    if arch != "linear" and variant != "nlinear":
        raise ValueError(f"variant={variant!r} only applies to arch='linear', not {arch!r}.")

    segments = None
    if segment_len is not None:
        segments = SegmentEmbedding(input_size, segment_len, hidden_size, arch != "transformer")
        input_size = hidden_size
    encoder = build_encoder(
        arch, input_size, seq_len, hidden_size=hidden_size, num_heads=num_heads, **encoder_options
    )
    pooling = None
    if attention is not None:
        pooling = AttentionPooling(encoder.output_size, attention, num_heads=num_heads)
    network = SequenceNetwork(encoder, output_size, pooling, segments)
    steps = seq_len if seq_len is None or segment_len is None else -(-seq_len // segment_len)
    init_weights(network, init, max_timescale=steps)
    return network


def build_encoder(
    arch: str,
    input_size: int,
    seq_len: int | None = None,
    *,
    hidden_size: int = 64,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    num_heads: int = 4,
    activation: str = "relu",
    dim_feedforward: int | None = None,
    variant: str = "nlinear",
    moving_avg: int = 25,
) -> nn.Module:
    """The encoder of ``arch`` over (B, T, input_size) steps, not yet initialised.

    ``mlp`` and ``linear`` read fixed windows of ``seq_len`` steps. ``hidden_size``: recurrent
    hidden size / MLP width / Transformer d_model; ``num_layers``: stacked layers; ``dropout``:
    between recurrent layers, after MLP blocks, inside Transformer layers; ``bidirectional``
    and ``nonlinearity`` (``tanh`` or ``relu``, ``rnn`` only): recurrent archs; ``num_heads``
    and ``dim_feedforward`` (default ``4 * hidden_size``): the Transformer; ``activation``:
    the MLP; ``variant`` (``nlinear``, or ``dlinear``: trend/seasonal decomposition) and
    ``moving_avg`` (the trend's window): ``linear``.
    """
    if arch in RECURRENT_ARCHS:
        return RecurrentEncoder(
            input_size,
            hidden_size,
            num_layers=num_layers,
            cell=arch,
            nonlinearity=nonlinearity,
            bidirectional=bidirectional,
            dropout=dropout,
        )
    if arch in ("mlp", "linear") and seq_len is None:
        raise ValueError(f"arch={arch!r} needs seq_len (the fixed window length / lookback).")
    if arch == "mlp":
        return MLPEncoder(
            input_size, seq_len, hidden_size, num_layers, activation=activation, dropout=dropout
        )
    if arch == "linear":
        return LinearEncoder(input_size, seq_len, variant, moving_avg)
    if arch == "transformer":
        return TransformerEncoderBaseline(
            input_size,
            d_model=hidden_size,
            num_heads=num_heads,
            num_layers=num_layers,
            dim_feedforward=dim_feedforward or 4 * hidden_size,
            dropout=dropout,
        )
    raise ValueError(f"Unknown arch {arch!r}; choose one of {ARCHS}.")


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters, for comparing model sizes across archs."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
