"""Export a trained model to ONNX or TorchScript, and run the exported files.

    python -m rnnlab.export --model models --format onnx --output models/model.onnx

The exported graph is the network alone, ``model(x)``: scaled input (B, T, F) in, the task's
output out (forecasting: the scaled forecast (B, horizon, targets)). The preprocessing it
expects (the scaler, the column order) stays in ``model_meta.json`` beside the weights.

What is exported: the path without ``lengths``. Packed sequences (``pack_padded_sequence``) have
no ONNX form, so a variable-length classifier exports its unpadded path: one sequence per call,
or a batch of sequences of one length. Text models take token ids (B, T) instead of values.
Batch and sequence length are dynamic axes wherever the traced graph reproduces the model at
another length; ``export_model`` checks that and otherwise pins the sequence length to the traced
one (``task.lookback`` for forecasting), so a file never answers wrongly at another length:
onnxruntime or the TorchScript guard refuses it. Pinned in practice: the MLP (its window is
fixed by design) and, in ONNX, ``nn.MultiheadAttention`` (multi-head pooling, the Transformer).

Loading is safe: ONNX is a protobuf graph; a TorchScript archive holds TorchScript code and
tensors, which ``torch.jit.load`` runs without unpickling Python objects (still, load only files
you produced: TorchScript is code).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnlab.cli import user_errors_exit
from rnnlab.errors import DataError, RnnlabError
from rnnlab.model_store import TrainedModel, load_trained

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
DEFAULT_STEPS = 32  # trace length for tasks without a fixed window (classification)
# Float32 graphs computing the same ops in another order differ by ~1e-7; 1e-4 flags real bugs.
CHECK_ATOL = 1e-4


class ExportError(RnnlabError, RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class Exported:
    path: Path
    fmt: str
    fixed_steps: int | None  # the one sequence length the file accepts; None: any length

    def describe(self) -> str:
        axes = (
            f"batch dynamic, sequence length fixed at {self.fixed_steps}"
            if self.fixed_steps
            else "batch and sequence length dynamic"
        )
        return f"wrote {self.path} ({self.fmt}; {axes}; checked against PyTorch)"


def trace_length(trained: TrainedModel) -> int:
    """The sequence length exports are traced at: the forecasting window, else a default."""
    return int(trained.cfg.task.get("lookback") or DEFAULT_STEPS)


def example_input(trained: TrainedModel, batch: int = 2, steps: int | None = None) -> torch.Tensor:
    """A model input batch: scaled values (B, T, F), or token ids (B, T) for text models."""
    steps = steps or trace_length(trained)
    generator = torch.Generator().manual_seed(batch * 1000 + steps)
    if trained.meta.get("kind") == "text":  # ids 1..n_tokens-1 (0 is padding)
        return torch.randint(1, trained.meta["n_tokens"], (batch, steps), generator=generator)
    return torch.randn(batch, steps, trained.meta["n_features"], generator=generator)


class _WithoutLengths(nn.Module):
    """``model(x)`` alone: tracing must not see the optional ``lengths`` argument."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _FixedLength(nn.Module):
    """Refuses input of another length, like onnxruntime does for a pinned ONNX axis."""

    def __init__(self, traced: nn.Module, steps: int) -> None:
        super().__init__()
        self.traced, self.steps = traced, steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.steps:
            raise ValueError(f"this export takes sequences of exactly {self.steps} steps")
        return self.traced(x)


def _write_onnx(trained: TrainedModel, output: Path, dynamic_time: bool) -> None:
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the torch.export one, but
        # that one unrolls nn.RNN over time (pinning the sequence length) and takes ~10 s a
        # model; this one keeps LSTM/GRU/RNN as single ONNX ops with a dynamic time axis.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _WithoutLengths(trained.model).eval(),
            (example_input(trained),),
            str(output),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch", 1: "time"} if dynamic_time else {0: "batch"}},
            opset_version=ONNX_OPSET,
        )


def _write_torchscript(trained: TrainedModel, output: Path, dynamic_time: bool) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in torch 2.13 but still works
        module = _WithoutLengths(trained.model).eval()
        traced = torch.jit.trace(module, example_input(trained), check_trace=False)
        if not dynamic_time:
            traced = torch.jit.script(_FixedLength(traced, trace_length(trained)))
        torch.jit.save(traced, str(output))


def load_exported(path: Path, fmt: str) -> Callable[[torch.Tensor], np.ndarray]:
    """The exported file as a function of a model input batch, run by its own runtime."""
    if fmt == "onnx":
        session = onnx_session(path)
        return lambda x: run_onnx(session, x.numpy())
    module = load_torchscript(path)
    return lambda x: module(x).detach().numpy()


def _agrees(trained: TrainedModel, run: Callable, batch: int, steps: int) -> bool:
    x = example_input(trained, batch, steps)
    try:
        with torch.no_grad():
            expected = trained.model(x).numpy()
        got = run(x)
    except Exception:  # the model (the MLP's fixed window) or a runtime refusing the shape
        return False
    return got.shape == expected.shape and bool(np.allclose(got, expected, atol=CHECK_ATOL))


def export_model(trained: TrainedModel, fmt: str, output: Path) -> Exported:
    """Export with dynamic batch and time axes, check the file against PyTorch, and pin the
    time axis if the traced graph only reproduces the model at the traced length.

    Tracing records Python-level shape logic as constants: the MLP's flattened window,
    ``nn.MultiheadAttention`` in ONNX, or a task that slices its input to a traced length give
    a graph that fails, or silently answers wrongly, at other lengths. Checking at a second
    length catches both; the file is then re-exported to accept only the traced length.
    """
    if fmt not in FORMATS:
        raise DataError(f"Unknown export format {fmt!r}; choose one of {FORMATS}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    write = _write_onnx if fmt == "onnx" else _write_torchscript
    steps = trace_length(trained)
    staging = output.with_name(f".{output.name}.partial")  # a failure keeps an older file intact
    try:
        try:
            write(trained, staging, dynamic_time=True)
        except Exception as err:  # the exporters fail with internal errors (C++ asserts, ...)
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
            raise ExportError(
                f"The {fmt} exporter cannot convert {trained.cfg.model.name}: {reason}. A model "
                "that packs its sequences (pack_padded_sequence) even without lengths has no "
                "ONNX form; export it to TorchScript instead."
            ) from err
        fixed, run = None, load_exported(staging, fmt)
        if not _agrees(trained, run, 3, steps + 7):
            write(trained, staging, dynamic_time=False)
            fixed, run = steps, load_exported(staging, fmt)
        if not all(_agrees(trained, run, batch, steps) for batch in (1, 5)):
            raise ExportError(
                f"The {fmt} export of {trained.cfg.model.name} does not reproduce the PyTorch "
                f"model (atol {CHECK_ATOL}); nothing was written. Try the other format."
            )
        staging.replace(output)
    finally:
        staging.unlink(missing_ok=True)
    return Exported(output, fmt, fixed)


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").eval()


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime session on the CPU; call ``run_onnx(session, x)``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, x: np.ndarray) -> np.ndarray:
    """Values go in as float32 (what the graph was traced with); token ids keep their int64."""
    x = np.ascontiguousarray(x, dtype=np.float32 if x.dtype.kind == "f" else x.dtype)
    return session.run(["y"], {"x": x})[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rnnlab.export", description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models"), help="trained-model dir")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--output", type=Path, required=True, help="file to write")
    args = parser.parse_args(argv)
    with user_errors_exit():
        exported = export_model(load_trained(args.model), args.format, args.output)
    print(exported.describe())


if __name__ == "__main__":
    main()
