"""ONNX and TorchScript export of every model variant, checked against eager PyTorch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.export import export_model, load_exported, onnx_session, run_onnx
from rnnlab.model_store import load_trained

# float32 graphs computing the same ops in a different order: observed differences are ~1e-7.
ATOL = 1e-5
# The default forecaster and the attention variant run by default; the rest are `-m slow`.
FAST = {"lstm", "lstm_attn"}
VARIANTS = [
    pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
    for name in (
        "rnn",
        "rnn_relu",
        "lstm",
        "gru",
        "bilstm",
        "bigru",
        "lstm_attn",
        "mlp",
        "transformer",
    )
]
SMALL = ["model.hidden_size=8", "task.lookback=24", "task.horizon=4"]


def _shapes(fixed_steps: int | None) -> list[tuple[int, int]]:
    if fixed_steps is not None:  # the sequence axis is pinned: vary the batch only
        return [(1, fixed_steps), (3, fixed_steps), (17, fixed_steps)]
    return [(1, 24), (3, 24), (17, 24), (5, 7), (2, 61)]


# Pinned by design (the MLP's window) or by tracing (multi-head attention in ONNX).
PINNED = {("mlp", "onnx"), ("mlp", "torchscript"), ("transformer", "onnx")}


# What a pinned-length export says to a 30-step input (not a shape error deep in the graph).
LENGTH_REFUSED = {
    "onnx": r"(?s)invalid dimensions for input: x.*Got: 30 Expected: 24",
    "torchscript": r"exactly 24 steps",
}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_export_matches_pytorch(untrained_model_dir, tmp_path: Path, variant: str, fmt: str):
    overrides = [f"model={variant}", *SMALL]
    if variant == "transformer":
        overrides.append("model.num_heads=2")
    trained = load_trained(untrained_model_dir(overrides))
    exported = export_model(trained, fmt, tmp_path / f"{variant}.{fmt}")
    assert exported.fixed_steps == (24 if (variant, fmt) in PINNED else None)
    run = load_exported(exported.path, fmt)
    for batch, length in _shapes(exported.fixed_steps):
        x = torch.randn(batch, length, trained.meta["n_features"])
        with torch.no_grad():
            expected = trained.model(x).numpy()  # (B, horizon, targets)
        got = run(x)
        assert got.shape == expected.shape == (batch, 4, 1)
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    if exported.fixed_steps:  # other lengths are refused, never answered wrongly
        with pytest.raises(Exception, match=LENGTH_REFUSED[fmt]):
            run(torch.randn(2, 30, 1))


def test_multihead_attention_pins_the_length_in_onnx_only(untrained_model_dir, tmp_path):
    trained = load_trained(
        untrained_model_dir(["model=lstm_attn", "model.attention=multihead", *SMALL])
    )
    onnx = export_model(trained, "onnx", tmp_path / "m.onnx")
    scripted = export_model(trained, "torchscript", tmp_path / "m.pt")
    assert (onnx.fixed_steps, scripted.fixed_steps) == (24, None)
    longer = torch.randn(6, 30, 1)
    with torch.no_grad():
        expected = trained.model(longer).numpy()
    np.testing.assert_allclose(
        load_exported(scripted.path, "torchscript")(longer), expected, atol=ATOL
    )
    with pytest.raises(Exception, match=LENGTH_REFUSED["onnx"]):
        load_exported(onnx.path, "onnx")(longer)


@pytest.mark.slow
def test_export_cli_writes_the_file(untrained_model_dir, tmp_path: Path):
    # A per-step LSTM: the forecasting default (segrnn) reads fixed 24-step segments.
    model_dir = untrained_model_dir(["model=lstm", *SMALL])
    output = tmp_path / "out" / "model.onnx"
    cmd = [sys.executable, "-m", "rnnlab.export", "--model", str(model_dir)]
    done = subprocess.run(
        [*cmd, "--format", "onnx", "--output", str(output)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "batch and sequence length dynamic; checked against PyTorch" in done.stdout
    assert run_onnx(onnx_session(output), np.zeros((2, 24, 1))).shape == (2, 4, 1)
    missing = subprocess.run(
        [*cmd[:-1], str(tmp_path / "nothing"), "--format", "onnx", "--output", str(output)],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "run the train stage first" in missing.stderr
    assert "Traceback" not in missing.stderr
