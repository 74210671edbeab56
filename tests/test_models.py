"""Behavioural tests for rnnlab.models: shapes, gradients, padding, init, attention, state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models import (
    ARCHS,
    INIT_SCHEMES,
    AdditiveAttention,
    AttentionPooling,
    DotProductAttention,
    MultiHeadAttention,
    RecurrentEncoder,
    build_attention,
    build_network,
    count_parameters,
    init_weights,
    lengths_to_mask,
)

B, T, F, H, OUT = 4, 7, 3, 16, 2

CONFIGS = {
    "rnn-tanh": dict(arch="rnn"),
    "rnn-relu-identity": dict(arch="rnn", nonlinearity="relu", init="identity"),
    "rnn-2layer-orthogonal": dict(arch="rnn", num_layers=2, dropout=0.1, init="orthogonal"),
    "lstm": dict(arch="lstm"),
    "lstm-2layer-xavier": dict(arch="lstm", num_layers=2, init="xavier"),
    "gru": dict(arch="gru", init="orthogonal"),
    "lstm-bi": dict(arch="lstm", bidirectional=True),
    "gru-bi": dict(arch="gru", bidirectional=True, num_layers=2),
    "lstm-additive": dict(arch="lstm", attention="additive"),
    "lstm-dot": dict(arch="lstm", attention="dot"),
    "lstm-multihead": dict(arch="lstm", attention="multihead", num_heads=4),
    "gru-bi-additive": dict(arch="gru", bidirectional=True, attention="additive"),
    "mlp-sigmoid": dict(arch="mlp", activation="sigmoid", num_layers=2),
    "mlp-tanh": dict(arch="mlp", activation="tanh"),
    "mlp-relu": dict(arch="mlp", activation="relu", dropout=0.1),
    "transformer": dict(arch="transformer", num_layers=2, num_heads=4, dim_feedforward=32),
    "nlinear": dict(arch="linear"),
    "dlinear": dict(arch="linear", variant="dlinear", moving_avg=3),
    "segment-gru": dict(arch="gru", segment_len=3),  # T=7: padded to 3 segments
    "segment-lstm": dict(arch="lstm", segment_len=2, num_layers=2),
    "patch-transformer": dict(arch="transformer", segment_len=2, num_heads=4, dim_feedforward=32),
}


def make(arch: str, **hparams) -> nn.Module:
    hparams.setdefault("hidden_size", H)
    return build_network(arch, input_size=F, output_size=OUT, seq_len=T, **hparams)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_all_archs_are_covered() -> None:
    assert {cfg["arch"] for cfg in CONFIGS.values()} == set(ARCHS)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_shape_and_gradients(name: str) -> None:
    net = make(**CONFIGS[name])
    x = torch.randn(B, T, F)
    y = net(x)
    assert y.shape == (B, OUT)
    y.pow(2).sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


PADDING_CASES = ["rnn-tanh", "lstm", "gru-bi", "lstm-bi", "gru-bi-additive", "transformer"]
PADDING_CASES += ["lstm-additive", "lstm-dot", "lstm-multihead"]


@pytest.mark.parametrize("name", PADDING_CASES)
def test_padding_invariance(name: str) -> None:
    """The same sequences padded to two lengths (with garbage) give the same outputs."""
    net = make(**CONFIGS[name]).eval()
    lengths = torch.tensor([5, 3, 1, 4])
    x = torch.randn(B, 5, F)
    x_short = x.clone()
    x_long = torch.cat([x, 100 * torch.randn(B, 4, F)], dim=1)  # (B, 9, F)
    for b, n in enumerate(lengths.tolist()):
        # Garbage (not zeros) after the true end, different in the two copies.
        x_short[b, n:] = torch.randn(5 - n, F) * 50
        x_long[b, n:] = torch.randn(9 - n, F) * 50
    with torch.no_grad():
        y_short = net(x_short, lengths)
        y_long = net(x_long, lengths)
        # Cutting each sequence to its own length and running it alone must agree too.
        y_single = torch.cat([net(x[b : b + 1, :n]) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(y_short, y_long, atol=1e-5, rtol=0)
    torch.testing.assert_close(y_short, y_single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_outputs_last_and_state(cell: str, bidirectional: bool) -> None:
    enc = RecurrentEncoder(F, H, num_layers=2, cell=cell, bidirectional=bidirectional)
    lengths = torch.tensor([7, 5, 2, 6])
    outputs, last, state = enc(torch.randn(B, T, F), lengths)
    d = enc.output_size
    assert d == H * (2 if bidirectional else 1)
    assert outputs.shape == (B, T, d) and last.shape == (B, d)
    h_n = state[0] if cell == "lstm" else state
    assert isinstance(state, tuple) == (cell == "lstm")
    assert h_n.shape == (2 * (2 if bidirectional else 1), B, H)
    for b, n in enumerate(lengths.tolist()):
        assert (outputs[b, n:] == 0).all(), "padded steps must be zero"
        # Forward direction: last real step; backward direction: step 0.
        torch.testing.assert_close(last[b, :H], outputs[b, n - 1, :H])
        if bidirectional:
            torch.testing.assert_close(last[b, H:], outputs[b, 0, H:])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_carry_matches_single_pass(cell: str) -> None:
    """Truncated-BPTT style: two halves with the state passed == one pass over the whole."""
    enc = RecurrentEncoder(F, H, num_layers=2, cell=cell)
    x = torch.randn(B, 10, F)
    full, last_full, state_full = enc(x)
    first, _, state = enc(x[:, :6])
    second, last_second, state_second = enc(x[:, 6:], state=state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full)
    torch.testing.assert_close(last_second, last_full)
    if cell == "lstm":
        assert isinstance(state_second, tuple) and len(state_second) == 2
        for a, b in zip(state_second, state_full, strict=True):
            torch.testing.assert_close(a, b)
    else:
        torch.testing.assert_close(state_second, state_full)


def test_encoder_bad_options() -> None:
    with pytest.raises(ValueError, match=r"'rnn', 'lstm', 'gru'"):
        RecurrentEncoder(F, H, cell="transformer")
    with pytest.raises(ValueError, match=r"'tanh', 'relu'"):
        RecurrentEncoder(F, H, cell="rnn", nonlinearity="gelu")
    with pytest.raises(ValueError, match="only applies to cell='rnn'"):
        RecurrentEncoder(F, H, cell="lstm", nonlinearity="relu")


# --- init schemes --------------------------------------------------------------------------


@pytest.mark.parametrize("cell,gates", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_orthogonal_init(cell: str, gates: int) -> None:
    enc = RecurrentEncoder(F, H, num_layers=2, cell=cell, bidirectional=True, init="orthogonal")
    eye = torch.eye(H)
    hh = [(n, p) for n, p in enc.rnn.named_parameters() if n.startswith("weight_hh")]
    assert len(hh) == 4  # 2 layers x 2 directions
    for _, w in hh:
        assert w.shape == (gates * H, H)
        for block in w.detach().split(H):
            torch.testing.assert_close(block @ block.T, eye, atol=1e-5, rtol=0)
    for name, b in enc.rnn.named_parameters():
        if not name.startswith("bias"):
            continue
        expected = torch.zeros_like(b)
        if cell == "lstm" and name.startswith("bias_ih"):
            expected[H : 2 * H] = 1.0  # forget gate
        torch.testing.assert_close(b.detach(), expected)


def test_identity_init_rnn() -> None:
    enc = RecurrentEncoder(F, 64, cell="rnn", nonlinearity="relu", init="identity")
    params = dict(enc.rnn.named_parameters())
    assert torch.equal(params["weight_hh_l0"], torch.eye(64))
    assert (params["bias_ih_l0"] == 0).all() and (params["bias_hh_l0"] == 0).all()
    assert params["weight_ih_l0"].std().item() == pytest.approx(0.001, rel=0.2)


def test_identity_init_gated_blocks() -> None:
    enc = RecurrentEncoder(F, H, cell="gru", init="identity")
    for block in enc.rnn.weight_hh_l0.detach().split(H):
        assert torch.equal(block, torch.eye(H))


def test_xavier_changes_weights_and_zeros_biases() -> None:
    net = make("lstm", attention="additive")
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    init_weights(net, "xavier")
    after = dict(net.named_parameters())
    for name in ("encoder.rnn.weight_ih_l0", "encoder.rnn.weight_hh_l0", "head.weight"):
        assert not torch.equal(before[name], after[name]), name
    assert (after["encoder.rnn.bias_ih_l0"] == 0).all()
    assert (after["head.bias"] == 0).all()
    # "default" leaves everything alone.
    snapshot = {n: p.detach().clone() for n, p in net.named_parameters()}
    init_weights(net, "default")
    assert all(torch.equal(snapshot[n], p) for n, p in net.named_parameters())


def test_unknown_init_scheme() -> None:
    names = r"'default', 'xavier', 'orthogonal', 'chrono', 'identity'"
    assert INIT_SCHEMES == ("default", "xavier", "orthogonal", "chrono", "identity")
    with pytest.raises(ValueError, match=names):
        init_weights(nn.LSTM(F, H), "he")
    with pytest.raises(ValueError, match=names):
        make("lstm", init="he")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chrono_init_spreads_gate_timescales_up_to_the_sequence_length(cell: str) -> None:
    torch.manual_seed(0)
    max_timescale = 200
    enc = RecurrentEncoder(F, 256, cell=cell, init="chrono", max_timescale=max_timescale)
    params = dict(enc.rnn.named_parameters())
    gates = params["bias_ih_l0"].detach().split(256)
    # The keep gate's bias b makes a unit forget 1 / (1 + e^b) of its state per step: its
    # timescale e^b must cover 1 .. T_max - 1, and reach well beyond the orthogonal init's e^1.
    timescales = gates[1].exp()
    assert timescales.min() >= 1.0 and timescales.max() <= max_timescale - 1
    assert timescales.max() > 150 and timescales.median() > 50
    if cell == "lstm":
        torch.testing.assert_close(gates[0], -gates[1])  # input gate mirrors the forget gate
    assert (params["bias_hh_l0"] == 0).all()
    for block in params["weight_hh_l0"].detach().split(256):  # orthogonal, as the base scheme
        torch.testing.assert_close(block @ block.T, torch.eye(256), atol=1e-4, rtol=0)


def test_chrono_init_needs_a_sequence_length() -> None:
    with pytest.raises(ConfigError, match=r"chrono.*sequence length.*init=orthogonal"):
        RecurrentEncoder(F, H, cell="lstm", init="chrono")
    # With a window length (forecast lookback, long-range T) the network builder passes it on.
    torch.manual_seed(0)
    forget = make("lstm", init="chrono", hidden_size=256).encoder.rnn.bias_ih_l0[256:512]
    assert 0.5 * (T - 1) < forget.exp().max() <= T - 1  # timescales up to this window, T


# --- attention -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attn",
    [AdditiveAttention(H, H, 8), DotProductAttention(H), MultiHeadAttention(H, 4)],
    ids=["additive", "dot", "multihead"],
)
def test_attention_weights_sum_to_one_and_mask_is_exact(attn: nn.Module) -> None:
    keys = torch.randn(B, T, H)
    query = torch.randn(B, H)
    mask = lengths_to_mask(torch.tensor([7, 3, 1, 5]), T)
    context, weights = attn(query, keys, mask)
    assert context.shape == (B, H) and weights.shape == (B, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))
    assert (weights[~mask] == 0).all(), "masked steps must get exactly zero weight"
    assert (weights[mask] > 0).all()
    # Unmasked call also returns a distribution.
    _, weights = attn(query, keys)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))


def test_additive_attention_supports_different_query_and_key_dims() -> None:
    attn = AdditiveAttention(query_dim=5, key_dim=H, attn_dim=8)
    context, weights = attn(torch.randn(B, 5), torch.randn(B, T, H))
    assert context.shape == (B, H) and weights.shape == (B, T)


def test_dot_attention_context_is_weighted_mean_of_keys() -> None:
    keys = torch.randn(B, T, H)
    context, weights = DotProductAttention(H, scaled=False)(torch.randn(B, H), keys)
    torch.testing.assert_close(context, (weights.unsqueeze(-1) * keys).sum(1))


def test_attention_pooling_and_factory() -> None:
    for kind in ("additive", "dot", "multihead"):
        context, weights = AttentionPooling(H, kind)(torch.randn(B, T, H), torch.randn(B, H))
        assert context.shape == (B, H) and weights.shape == (B, T)
    with pytest.raises(ValueError, match=r"'additive', 'dot', 'multihead'"):
        build_attention("luong", H)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        build_attention("multihead", 10, num_heads=4)


# --- factory errors ------------------------------------------------------------------------


def test_unknown_arch() -> None:
    with pytest.raises(ValueError, match=r"'cnn'.*'rnn', 'lstm', 'gru', 'mlp', 'transformer'"):
        make("cnn")


def test_unknown_attention() -> None:
    with pytest.raises(ValueError, match=r"'luong'.*'additive', 'dot', 'multihead'"):
        make("lstm", attention="luong")
    with pytest.raises(ValueError, match="only apply to recurrent archs"):
        make("mlp", attention="dot")


def test_unknown_activation() -> None:
    with pytest.raises(ValueError, match=r"'gelu'.*'sigmoid', 'tanh', 'relu'"):
        make("mlp", activation="gelu")


def test_mlp_needs_fixed_length_windows() -> None:
    net = make("mlp")
    with pytest.raises(ValueError, match=rf"fixed-length windows of seq_len={T}"):
        net(torch.randn(B, T + 2, F))
    with pytest.raises(ValueError, match="cannot handle padded"):
        net(torch.randn(B, T, F), torch.tensor([T, T, 3, T]))
    net(torch.randn(B, T, F), torch.full((B,), T))  # full lengths are fine
    with pytest.raises(ValueError, match="needs seq_len"):
        build_network("mlp", F, OUT, seq_len=None)


def test_nonlinearity_only_for_rnn() -> None:
    with pytest.raises(ValueError, match="only applies to arch='rnn'"):
        make("gru", nonlinearity="relu")


def test_count_parameters() -> None:
    lstm = nn.LSTM(F, H)
    assert count_parameters(lstm) == 4 * H * (F + H + 2)
    lstm.weight_hh_l0.requires_grad_(False)
    assert count_parameters(lstm) == 4 * H * (F + 2)
    assert count_parameters(lstm, trainable_only=False) == 4 * H * (F + H + 2)


# --- learning sanity check -----------------------------------------------------------------


def test_lstm_learns_sequence_sum() -> None:
    """An LSTM must beat predict-the-mean by a wide margin on y = sum(x), on held-out data."""
    torch.manual_seed(0)
    x = torch.rand(512, 10, 1) - 0.5  # centred inputs
    y = x.sum(dim=1)  # (N, 1)
    y = (y - y.mean()) / y.std()  # standardised target, as the data pipeline would do
    x_train, y_train, x_test, y_test = x[:256], y[:256], x[256:], y[256:]
    net = build_network("lstm", input_size=1, output_size=1, hidden_size=32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.mse_loss(net(x_train), y_train).backward()
        opt.step()
    with torch.no_grad():
        test_loss = nn.functional.mse_loss(net(x_test), y_test).item()
    baseline = ((y_test - y_train.mean()) ** 2).mean().item()  # predict the training mean
    assert test_loss < 0.05 * baseline, (test_loss, baseline)
