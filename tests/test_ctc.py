"""CTC decoding and error rates, the acoustic model's padding safety and streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnlab.data.audio import FeaturePipeline
from rnnlab.errors import ConfigError
from rnnlab.models.acoustic import AcousticModel
from rnnlab.tasks.asr import posteriors
from rnnlab.tasks.asr_streaming import StreamingRecognizer
from rnnlab.tasks.ctc import error_rates, greedy_decode, prefix_beam_search


def _log(probs: list[list[float]]) -> np.ndarray:
    return np.log(np.asarray(probs, dtype=np.float64))


def test_greedy_collapses_repeats_and_drops_blanks():
    # Frames: a a _ a b b _  ->  "a a b" as ids [1, 1, 2]
    ids = [1, 1, 0, 1, 2, 2, 0]
    log_probs = np.log(np.eye(3)[ids] * 0.97 + 0.01)
    assert greedy_decode(log_probs) == [1, 1, 2]


def test_beam_search_sums_alignments_that_greedy_splits():
    # Two frames over {blank, a}: the best single path is blank-blank (0.36), but "a" has three
    # paths (a_, _a, aa) worth 0.64 together: the prefix beam search must find "a".
    log_probs = _log([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_decode(log_probs) == []
    assert prefix_beam_search(log_probs, beam_width=4) == [1]


def test_beam_search_keeps_a_doubled_letter_apart_from_a_long_one():
    # "aa" needs a blank between the two a's; a long "a" collapses.
    doubled = _log([[0.01, 0.98, 0.01], [0.98, 0.01, 0.01], [0.01, 0.98, 0.01]])
    single = _log([[0.01, 0.98, 0.01], [0.01, 0.98, 0.01], [0.01, 0.98, 0.01]])
    assert prefix_beam_search(doubled, 4) == [1, 1]
    assert prefix_beam_search(single, 4) == [1]


def test_beam_search_matches_brute_force_on_random_posteriors():
    rng = np.random.default_rng(0)
    for _ in range(5):
        probs = rng.dirichlet(np.ones(3) * 0.5, size=5)
        scores: dict[tuple[int, ...], float] = {}
        for path in np.ndindex(*(3,) * 5):  # every alignment, summed per labelling
            label = tuple(greedy_decode(np.log(np.eye(3)[list(path)] + 1e-9)))
            p = math.prod(probs[t, s] for t, s in enumerate(path))
            scores[label] = scores.get(label, 0.0) + p
        best = max(scores, key=scores.get)
        assert tuple(prefix_beam_search(np.log(probs), beam_width=50, prune=-50)) == best


def test_error_rates():
    rates = error_rates(["one two thre"], ["one two three"])
    assert rates["cer"] == pytest.approx(1 / 13)
    assert rates["wer"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("arch", "options"),
    [
        ("gru", {"bidirectional": True}),
        ("lstm", {}),
        ("lstm", {"lookahead": 2}),
        ("mlp", {}),
        ("transformer", {}),
    ],
)
def test_padding_never_changes_the_output(arch, options):
    torch.manual_seed(0)
    model = AcousticModel(arch, 5, 4, subsample=2, context=2, hidden_size=8, **options).eval()
    short = torch.randn(1, 7, 5)
    padded = torch.cat([short, 100 * torch.randn(1, 6, 5)], dim=1)
    other = torch.randn(1, 13, 5)
    with torch.no_grad():
        alone, n_alone = model(short, torch.tensor([7]))
        batch, n_batch = model(torch.cat([padded, other]), torch.tensor([7, 13]))
    assert n_alone.tolist() == [4] and n_batch.tolist() == [4, 7]
    torch.testing.assert_close(batch[0, :4], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("lookahead", "cmvn"), [(0, "global"), (2, "global"), (2, "running")])
def test_streaming_in_chunks_equals_the_whole_utterance(lookahead, cmvn):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    pipeline = FeaturePipeline(n_mels=12, cmvn=cmvn)
    pipeline = pipeline.fit([pipeline.raw_features(wave)])
    alphabet = ["_", "a", "b", "c"]
    model = AcousticModel(
        "gru", 12, 4, subsample=3, lookahead=lookahead, hidden_size=16, num_layers=2
    ).eval()
    offline = posteriors(model, [pipeline(wave)])[0]
    streaming = StreamingRecognizer(model, pipeline, alphabet)
    for start in range(0, len(wave), 1234):  # chunks that cut frames and stacks anywhere
        streaming.accept(wave[start : start + 1234])
    text = streaming.finish()
    assert text == "".join(alphabet[i] for i in greedy_decode(offline))
    assert len(text) > 3  # random weights still emit symbols: the comparison means something
    bidirectional = AcousticModel("gru", 12, 4, bidirectional=True, hidden_size=4)
    with pytest.raises(ConfigError, match="unidirectional"):
        StreamingRecognizer(bidirectional, pipeline, alphabet)
    per_recording = FeaturePipeline(n_mels=12, cmvn="utterance")
    with pytest.raises(ConfigError, match=r"data\.cmvn=running or global"):
        StreamingRecognizer(model, per_recording, alphabet)
