"""Audio in: reading WAV/FLAC, mono mix-down, resampling, log-mel/MFCC features, SpecAugment.

Torch-free (numpy, soundfile, librosa), so ``prepare`` stays light. ``FeaturePipeline`` is a
plain dataclass that is saved in the prepared metadata and with the trained model: the logged
model computes exactly the training features (and normalisation) from raw audio.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnlab.data.checks import require_columns
from rnnlab.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac")
SILENCE_RMS = 1e-4  # -80 dBFS: below this a recording holds no usable sound
FEATURE_KINDS = ("logmel", "mfcc")
CMVN_KINDS = ("global", "utterance", "running")
# cmvn=running: the spread starts from this prior (per channel, natural-log mel units; about
# the median within-recording variance of the generated training speech), worth
# this many frames, so the first frames of a stream are not divided by a near-zero spread.
RUNNING_PRIOR_VAR, RUNNING_PRIOR_FRAMES = 4.0, 10.0

RunningStats = tuple[float, np.ndarray, np.ndarray]  # frames seen, their sum, sum of squares


def running_cmvn(
    frames: np.ndarray, state: RunningStats | None = None
) -> tuple[np.ndarray, RunningStats]:
    """Causal per-recording normalisation of (T, F) frames: each frame minus the mean of the
    recording so far (itself included), over the spread so far (shrunk towards
    ``RUNNING_PRIOR_VAR``). ``state`` carries the statistics from earlier chunks of the same
    recording, so chunk by chunk gives the same frames as the whole recording at once."""
    x = frames.astype(np.float64)
    count, total, squares = state or (0.0, np.zeros(x.shape[1]), np.zeros(x.shape[1]))
    counts = count + np.arange(1, len(x) + 1, dtype=np.float64)[:, None]
    sums = total + np.cumsum(x, axis=0)
    sum_squares = squares + np.cumsum(x * x, axis=0)
    mean = sums / counts
    deviation = np.maximum(sum_squares - counts * mean * mean, 0.0)  # sum of squared deviations
    var = (RUNNING_PRIOR_FRAMES * RUNNING_PRIOR_VAR + deviation) / (RUNNING_PRIOR_FRAMES + counts)
    out = (x - mean) / np.sqrt(var)
    if len(x):
        state = (float(counts[-1, 0]), sums[-1], sum_squares[-1])
    return out.astype(np.float32), state or (count, total, squares)


def _check_wave(samples: np.ndarray, sample_rate: int, name: str, min_samples: int) -> None:
    if samples.size == 0:
        raise DataError(f"{name} is empty (no samples); remove it or record it again.")
    if samples.shape[0] < min_samples:
        raise DataError(
            f"{name} is too short ({samples.shape[0]} samples at {sample_rate} Hz); every "
            f"recording needs at least {min_samples} samples (one analysis window)."
        )
    if not np.isfinite(samples).all():
        raise DataError(f"{name} holds NaN or infinite samples; re-export it.")
    if float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS:
        raise DataError(
            f"{name} is silent (RMS below -80 dBFS); check the microphone or remove the file."
        )


def decode_audio(
    source: Path | bytes, sample_rate: int, name: str | None = None, min_samples: int = 1
) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` from a WAV/FLAC file or its bytes.

    Several channels are averaged; another sample rate is resampled (soxr). A missing,
    unreadable, empty or silent recording raises ``DataError`` naming it.
    """
    import soundfile as sf

    label = name or (str(source) if isinstance(source, Path) else "the audio")
    if isinstance(source, Path) and not source.is_file():
        raise DataError(f"Audio file {label} not found; check the path in your manifest.")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        samples, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise DataError(
            f"{label} cannot be read as audio ({err}); WAV and FLAC are supported."
        ) from None
    samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]  # mono mix-down
    if rate != sample_rate and samples.size:
        import soxr  # what librosa.resample calls by default, without librosa's import time

        samples = soxr.resample(samples, rate, sample_rate, "HQ")
    _check_wave(samples, sample_rate, label, min_samples)
    return np.ascontiguousarray(samples, dtype=np.float32)


def encode_wav(samples: np.ndarray, sample_rate: int) -> str:
    """Base64 text of a 16-bit WAV: how audio travels in a JSON request's ``audio`` column."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def audio_from_frame(frame: pd.DataFrame, sample_rate: int, min_samples: int) -> list[np.ndarray]:
    """Waves from a request's ``audio`` column: each value is the path of a .wav/.flac file, or
    the base64 text of a WAV/FLAC file's bytes (how audio travels in a JSON request)."""
    require_columns(frame, ["audio"], fix="Send paths of .wav/.flac files, or base64 WAV bytes.")
    waves = []
    for i, value in enumerate(frame["audio"]):
        text = str(value)
        if text.lower().endswith(AUDIO_EXTENSIONS):
            waves.append(decode_audio(Path(text), sample_rate, min_samples=min_samples))
            continue
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DataError(
                f"audio of row {i}: neither a .wav/.flac path nor base64 text of a WAV/FLAC file."
            ) from None
        waves.append(decode_audio(data, sample_rate, f"audio of row {i}", min_samples))
    return waves


@dataclass
class FeaturePipeline:
    """Raw mono audio -> normalised (T, F) feature frames; saved with the data and the model."""

    sample_rate: int = 16000
    kind: str = "logmel"  # logmel | mfcc
    n_mels: int = 40
    n_mfcc: int = 13
    win_ms: float = 25.0
    hop_ms: float = 10.0
    # utterance: each recording's own mean and spread per channel are taken out first, which
    # removes much of what differs between voices and microphones; it needs the whole recording
    # (not for streaming). running: the same from the recording's start up to each frame
    # (``running_cmvn``): causal, so streamable. Saved models from before this setting existed
    # used global.
    cmvn: str = "global"  # global | utterance | running
    mean: list[float] = field(default_factory=list)  # per feature, training split only
    std: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise DataError(f"data.features={self.kind!r}; choose one of {list(FEATURE_KINDS)}.")
        if self.cmvn not in CMVN_KINDS:
            raise DataError(f"data.cmvn={self.cmvn!r}; choose one of {list(CMVN_KINDS)}.")

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def n_features(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    def raw_features(self, samples: np.ndarray) -> np.ndarray:
        """(T, F) float32 log-mel (natural log) or MFCC frames, before the normalisation with
        training statistics (with ``cmvn="utterance"`` or ``"running"`` already normalised per
        recording)."""
        frames = self.log_frames(samples)
        if self.cmvn == "utterance":
            frames = (frames - frames.mean(axis=0)) / np.maximum(frames.std(axis=0), 1e-2)
        elif self.cmvn == "running":
            frames, _ = running_cmvn(frames)
        return np.ascontiguousarray(frames, dtype=np.float32)

    def log_frames(self, samples: np.ndarray) -> np.ndarray:
        """(T, F) log-mel or MFCC frames, before any normalisation."""
        import librosa

        n_fft = 1 << (self.win_length - 1).bit_length()  # next power of two
        mel = librosa.feature.melspectrogram(
            y=samples,
            sr=self.sample_rate,
            n_fft=n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            center=False,  # frame t covers samples [t*hop, t*hop + n_fft): streaming-friendly
        )
        logmel = np.log(mel + 1e-6)  # (n_mels, T)
        if self.kind == "mfcc":
            logmel = librosa.feature.mfcc(S=logmel, n_mfcc=self.n_mfcc)
        return logmel.T

    @property
    def min_samples(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    def fit(self, frames: list[np.ndarray]) -> FeaturePipeline:
        """A copy whose normalisation is fitted on ``frames`` (training features only)."""
        stacked = np.concatenate(frames).astype(np.float64)
        std = np.maximum(stacked.std(axis=0), 1e-2)  # log domain: a constant channel stays 0
        return FeaturePipeline(
            **{**self.to_dict(), "mean": stacked.mean(axis=0).tolist(), "std": std.tolist()}
        )

    def normalise(self, frames: np.ndarray) -> np.ndarray:
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return (frames - mean) / std

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Raw samples -> normalised (T, F) float32 features."""
        return self.normalise(self.raw_features(samples))

    def stream(
        self, samples: np.ndarray, state: RunningStats | None = None
    ) -> tuple[np.ndarray, RunningStats | None]:
        """Normalised features of the next piece of a recording (cut at a frame boundary) and
        the running statistics for the piece after it: pieces in turn give the features of the
        whole recording. Not for ``cmvn="utterance"``, which needs the whole recording."""
        if self.cmvn == "utterance":
            raise DataError(
                "data.cmvn=utterance needs the whole recording; streaming needs data.cmvn=running "
                "or global."
            )
        frames = self.log_frames(samples)
        if self.cmvn == "running":
            frames, state = running_cmvn(frames, state)
        return self.normalise(np.asarray(frames, np.float32)), state

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spec_augment(
    frames: np.ndarray,
    rng: np.random.Generator,
    freq_masks: int,
    freq_width: int,
    time_masks: int,
    time_width: int,
) -> np.ndarray:
    """SpecAugment-style masking (Park et al. 2019) of normalised (T, F) features: up to
    ``freq_width`` channels and ``time_width`` frames per mask are set to 0 (the mean)."""
    out = frames.copy()
    steps, channels = out.shape
    for _ in range(freq_masks):
        width = int(rng.integers(0, min(freq_width, channels) + 1))
        start = int(rng.integers(0, channels - width + 1))
        out[:, start : start + width] = 0.0
    for _ in range(time_masks):
        width = int(rng.integers(0, min(time_width, max(steps // 5, 1)) + 1))
        start = int(rng.integers(0, steps - width + 1))
        out[start : start + width, :] = 0.0
    return out


def freq_warp(frames: np.ndarray, factor: float, boundary: float = 0.8) -> np.ndarray:
    """Vocal-tract-length perturbation (Jaitly & Hinton 2013) on (T, F) mel-band features:
    band ``c`` takes the value at ``c * factor`` (linearly interpolated) up to ``boundary`` of
    the axis, and the rest is stretched so the top band stays put. A factor above 1 moves the
    formants down, as a longer vocal tract does, so training hears more kinds of voices."""
    channels = frames.shape[1]
    top = channels - 1
    knee = boundary * top * min(1.0, 1.0 / factor)  # so the warped knee stays inside the axis
    c = np.arange(channels, dtype=np.float64)
    source = np.where(
        c <= knee, c * factor, knee * factor + (c - knee) * (top - knee * factor) / (top - knee)
    )
    source = np.clip(source, 0.0, top)
    low = np.minimum(np.floor(source).astype(int), top - 1)
    frac = (source - low).astype(frames.dtype)
    return frames[:, low] * (1 - frac) + frames[:, low + 1] * frac
