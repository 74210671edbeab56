"""Real-time transcription: audio arrives in chunks, the recurrent state is carried between them.

For a unidirectional recurrent acoustic model the result equals transcribing the whole
utterance at once: feature frames are cut at the same sample positions (``center=False``
framing), frames are stacked in the same groups, and the state after one chunk starts the next
(with ``data.cmvn=running`` the per-recording statistics too).
A model with ``lookahead`` L emits a step only once the L steps after it have arrived (L x
subsample x hop of extra latency); ``finish`` gives the last ones the zeros the offline model
sees past the end.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnlab.data.audio import FeaturePipeline, RunningStats
from rnnlab.errors import ConfigError
from rnnlab.models.acoustic import AcousticModel
from rnnlab.models.encoders import State


class StreamingRecognizer:
    """Feed ``accept(samples)`` as audio arrives (mono float32 at the model's sample rate);
    ``finish()`` flushes the last frames and returns the transcript (greedy decoding)."""

    def __init__(self, model: AcousticModel, pipeline: FeaturePipeline, alphabet: list[str]):
        if not model.streamable:
            raise ConfigError(
                "Streaming needs a unidirectional recurrent model (e.g. model=gru or lstm); a "
                "bidirectional or non-recurrent one needs the whole utterance."
            )
        if pipeline.cmvn == "utterance":
            raise ConfigError(
                "Streaming needs causal feature normalisation (data.cmvn=running or global); "
                "this model was trained with data.cmvn=utterance, which needs the whole recording."
            )
        self.model, self.pipeline, self.alphabet = model.eval(), pipeline, alphabet
        self.window, self.hop = pipeline.min_samples, pipeline.hop_length
        self.samples = np.zeros(0, np.float32)  # not yet framed; starts at a frame boundary
        self.frames = np.zeros((0, pipeline.n_features), np.float32)  # not yet stacked
        self.future = torch.zeros(1, 0, pipeline.n_features * model.subsample)  # lookahead only
        self.cmvn: RunningStats | None = None  # data.cmvn=running: the statistics so far
        self.state: State | None = None
        self.ids: list[int] = []
        self.previous = 0  # last frame's best id, for collapsing repeats across chunks

    def accept(self, chunk: np.ndarray) -> str:
        """Take more audio; return the transcript so far."""
        self.samples = np.concatenate([self.samples, chunk.astype(np.float32)])
        if len(self.samples) >= self.window:
            n_frames = 1 + (len(self.samples) - self.window) // self.hop
            used = (n_frames - 1) * self.hop + self.window
            frames, self.cmvn = self.pipeline.stream(self.samples[:used], self.cmvn)
            self.frames = np.concatenate([self.frames, frames])
            self.samples = self.samples[n_frames * self.hop :]
        ready = len(self.frames) - len(self.frames) % self.model.subsample
        self._decode(self.frames[:ready])
        self.frames = self.frames[ready:]
        return self.text

    def finish(self) -> str:
        """Decode the frames still waiting for a full stack (zero-padded, as offline)."""
        if len(self.frames):
            missing = (-len(self.frames)) % self.model.subsample
            self._decode(np.pad(self.frames, ((0, missing), (0, 0))))
            self.frames = self.frames[:0]
        if self.model.lookahead:
            self._step(torch.zeros(1, self.model.lookahead, self.future.size(-1)))
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.alphabet[i] for i in self.ids)

    def _decode(self, frames: np.ndarray) -> None:
        if len(frames):
            self._step(self.model.stack_frames(torch.from_numpy(frames).unsqueeze(0)))

    def _step(self, stacked: torch.Tensor) -> None:
        """Decode the steps whose lookahead has arrived; keep the last L steps for later."""
        x = torch.cat([self.future, stacked], dim=1)  # (1, t, kF)
        self.future = x[:, max(x.size(1) - self.model.lookahead, 0) :]
        if x.size(1) <= self.model.lookahead:
            return
        with torch.no_grad():
            log_probs, self.state = self.model.step(x, self.state)
        for i in log_probs[0].argmax(dim=-1).tolist():
            if i != 0 and i != self.previous:
                self.ids.append(i)
            self.previous = i
