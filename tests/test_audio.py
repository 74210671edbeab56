"""Audio in (WAV/FLAC, mono, resampling, features, SpecAugment) and the eSpeak NG corpus."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from rnnlab.data.audio import (
    FeaturePipeline,
    audio_from_frame,
    decode_audio,
    encode_wav,
    freq_warp,
    running_cmvn,
    spec_augment,
)
from rnnlab.data.audio_sets import corpus_digest, with_noisy_copies
from rnnlab.data.speech_synth import (
    VARIANTS,
    Speaker,
    SynthJob,
    add_noise,
    speakers_by_split,
    synthesize_files,
)
from rnnlab.errors import ConfigError, DataError


def _tone(rate: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_wav_and_flac_read_alike_stereo_is_mixed_and_other_rates_resampled(tmp_path: Path):
    tone = _tone(16000)
    sf.write(tmp_path / "a.wav", tone, 16000, subtype="PCM_16")
    sf.write(tmp_path / "a.flac", tone, 16000, subtype="PCM_16")
    wav, flac = (decode_audio(tmp_path / f"a.{ext}", 16000) for ext in ("wav", "flac"))
    np.testing.assert_allclose(wav, flac, atol=1e-4)  # 16-bit: one step
    np.testing.assert_allclose(wav, tone, atol=1e-4)

    # Stereo with the tone in one channel only: the mix-down is half the tone.
    sf.write(tmp_path / "stereo.wav", np.stack([tone, 0 * tone], axis=1), 16000)
    np.testing.assert_allclose(decode_audio(tmp_path / "stereo.wav", 16000), tone / 2, atol=1e-4)

    # 44.1 kHz in: resampled to 16 kHz, same duration and pitch (spectral peak at 440 Hz).
    sf.write(tmp_path / "cd.wav", _tone(44100), 44100)
    resampled = decode_audio(tmp_path / "cd.wav", 16000)
    assert len(resampled) == pytest.approx(8000, abs=2)
    spectrum = np.abs(np.fft.rfft(resampled))
    assert np.fft.rfftfreq(len(resampled), 1 / 16000)[spectrum.argmax()] == pytest.approx(
        440, abs=3
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (b"this is not audio", "cannot be read as audio"),
        (np.zeros(0, np.float32), "is empty"),
        (np.zeros(16000, np.float32), "is silent"),
        (np.full(100, 0.1, np.float32), "too short"),
    ],
)
def test_bad_recordings_are_refused_naming_the_file(tmp_path: Path, content, message):
    path = tmp_path / "bad.wav"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        sf.write(path, content, 16000)
    with pytest.raises(DataError, match=message) as err:
        decode_audio(path, 16000, min_samples=512)
    assert "bad.wav" in str(err.value)


def test_requests_carry_audio_as_paths_or_base64(tmp_path: Path):
    tone = _tone(16000)
    sf.write(tmp_path / "t.wav", tone, 16000)
    by_path = audio_from_frame(pd.DataFrame({"audio": [str(tmp_path / "t.wav")]}), 16000, 512)
    by_bytes = audio_from_frame(pd.DataFrame({"audio": [encode_wav(tone, 16000)]}), 16000, 512)
    np.testing.assert_allclose(by_path[0], by_bytes[0], atol=1e-4)
    with pytest.raises(DataError, match="row 0"):
        audio_from_frame(pd.DataFrame({"audio": ["###"]}), 16000, 512)
    with pytest.raises(DataError, match=r"row 0.*cannot be read"):
        junk = base64.b64encode(b"not a wav").decode()
        audio_from_frame(pd.DataFrame({"audio": [junk]}), 16000, 512)
    with pytest.raises(DataError, match=r"no column\(s\) \['audio'\]"):
        audio_from_frame(pd.DataFrame({"sound": ["x.wav"]}), 16000, 512)


def test_features_frames_and_training_statistics():
    pipeline = FeaturePipeline(sample_rate=16000, n_mels=40, win_ms=25, hop_ms=10)
    frames = pipeline.raw_features(_tone(16000, seconds=1.0))
    # center=False framing: 1 + (16000 - 512) // 160 frames of the 40 mel channels.
    assert frames.shape == (1 + (16000 - 512) // 160, 40)
    train = [frames, pipeline.raw_features(_tone(16000, freq=880.0))]
    fitted = pipeline.fit(train)
    normalised = np.concatenate([fitted.normalise(f) for f in train])
    np.testing.assert_allclose(normalised.mean(axis=0), 0, atol=1e-3)
    # The fitted pipeline survives a round trip through its dict (how the model keeps it).
    again = FeaturePipeline(**fitted.to_dict())
    np.testing.assert_array_equal(again(_tone(16000)), fitted(_tone(16000)))
    mfcc = FeaturePipeline(kind="mfcc", n_mfcc=13).raw_features(_tone(16000))
    assert mfcc.shape[1] == 13


def test_per_recording_cmvn_removes_a_channel_gain():
    """A recording through a louder microphone with a different frequency response: per-recording
    normalisation gives the same features, the global one does not."""
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    wave = _tone(16000, seconds=1.0) * np.linspace(0.1, 1.0, 16000, dtype=np.float32) + 0.05 * noise
    coloured = 4.0 * np.append(wave[0], wave[1:] + 0.5 * wave[:-1]).astype(np.float32)
    per_recording = FeaturePipeline(cmvn="utterance")
    shifted = per_recording.raw_features(coloured) - per_recording.raw_features(wave)
    global_shift = FeaturePipeline().raw_features(coloured) - FeaturePipeline().raw_features(wave)
    assert np.abs(shifted).mean() < 0.1 < np.abs(global_shift).mean()
    with pytest.raises(DataError, match=r"data\.cmvn"):
        FeaturePipeline(cmvn="speaker")


def _in_pieces(pipeline: FeaturePipeline, wave: np.ndarray, size: int) -> np.ndarray:
    """``pipeline.stream`` over ``wave`` arriving ``size`` samples at a time, cut at frame
    boundaries as the streaming recogniser cuts it."""
    state, parts, pending = None, [], np.zeros(0, np.float32)
    for start in range(0, len(wave), size):
        pending = np.concatenate([pending, wave[start : start + size]])
        if len(pending) >= pipeline.min_samples:
            n = 1 + (len(pending) - pipeline.min_samples) // pipeline.hop_length
            used = (n - 1) * pipeline.hop_length + pipeline.min_samples
            frames, state = pipeline.stream(pending[:used], state)
            parts.append(frames)
            pending = pending[n * pipeline.hop_length :]
    return np.concatenate(parts)


def test_running_cmvn_is_causal_and_the_same_in_chunks():
    """cmvn=running: chunk by chunk with the statistics carried gives the whole recording's
    features; a frame never depends on later audio; a channel gain fades out as the recording
    goes on (unlike global normalisation)."""
    noise = np.random.default_rng(1).standard_normal(32000).astype(np.float32)
    wave = _tone(16000, seconds=2.0) * np.linspace(0.1, 1.0, 32000, dtype=np.float32) + 0.05 * noise
    pipeline = FeaturePipeline(cmvn="running")
    pipeline = pipeline.fit([pipeline.raw_features(wave)])
    whole = pipeline(wave)
    for size in (1234, 160, 4000):
        np.testing.assert_allclose(_in_pieces(pipeline, wave, size), whole, atol=1e-5)
    first_second = pipeline(wave[:16000])
    np.testing.assert_array_equal(first_second, whole[: len(first_second)])  # causal
    assert not np.allclose(
        first_second,
        FeaturePipeline(cmvn="utterance").fit(
            [FeaturePipeline(cmvn="utterance").raw_features(wave)]
        )(wave[:16000]),
        atol=0.1,
    )
    louder = 4.0 * wave
    shift = np.abs(pipeline.raw_features(louder) - pipeline.raw_features(wave))
    assert (
        shift[-50:].mean()
        < 0.05
        < np.abs(
            FeaturePipeline().raw_features(louder) - FeaturePipeline().raw_features(wave)
        ).mean()
    )
    frames = np.random.default_rng(2).normal(3.0, 2.0, (400, 5))
    out, state = running_cmvn(frames)
    assert state[0] == 400 and abs(out[200:].mean()) < 0.2 and 0.7 < out[200:].std() < 1.3
    with pytest.raises(DataError, match=r"data\.cmvn=utterance needs the whole recording"):
        FeaturePipeline(cmvn="utterance").stream(wave)


def test_a_bad_cmvn_setting_is_named(compose_cfg):
    with pytest.raises(ConfigError, match=r"data\.cmvn.*running"):
        compose_cfg(["task=asr", "data=synth_speech", "data.cmvn=streaming"])


def test_spec_augment_masks_whole_bands_and_spans():
    frames = np.ones((100, 40), np.float32)
    masked = spec_augment(frames, np.random.default_rng(0), 2, 8, 2, 10)
    zero_channels = (masked == 0).all(axis=0).sum()
    zero_frames = (masked == 0).all(axis=1).sum()
    assert 0 < zero_channels <= 16 and 0 < zero_frames <= 20
    assert (frames == 1).all()  # the input is not modified


def test_freq_warp_moves_formants_and_keeps_the_axis_ends():
    """A factor above 1 reads each low band from a higher one (formants move down, as in a
    longer vocal tract); 1 is the identity; the top band stays put."""
    frames = np.zeros((5, 40), np.float32)
    frames[:, 22] = 1.0  # one "formant" at band 22
    np.testing.assert_array_equal(freq_warp(frames, 1.0), frames)
    longer, shorter = freq_warp(frames, 1.1), freq_warp(frames, 0.9)
    assert longer[0].argmax() == 20 and shorter[0].argmax() == 24
    ramp = np.tile(np.arange(40, dtype=np.float32), (3, 1))
    for factor in (0.85, 1.15):
        warped = freq_warp(ramp, factor)
        assert warped[0, 0] == 0 and warped[0, -1] == 39 and (np.diff(warped[0]) > 0).all()


def test_noisy_copies_leave_the_digest_of_your_recordings_alone():
    """Your manifest has no SNR column: the copies bring one, and neither it nor the copies
    change the digest that tells runs on the same recordings apart from others."""
    mine = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "path": ["a.wav", "b.wav", "c.wav"],
            "label": ["yes", "no", "yes"],
            "note": [np.nan] * 3,  # an empty column of yours still counts
            "split": ["train", "train", "test"],
        }
    )
    copied = with_noisy_copies(mine, 2, [20.0, 10.0], seed=0)
    assert len(copied) == 3 + 2 * 2 and copied["snr_db"].iloc[3:].notna().all()
    assert corpus_digest(copied) == corpus_digest(mine)
    assert corpus_digest(mine.drop(columns="note")) != corpus_digest(mine)


def test_espeak_corpus_is_reproduced_exactly_and_voices_differ(tmp_path: Path):
    jobs = [
        SynthJob(str(tmp_path / f"{run}_{v}.flac"), "three seven", Speaker("en-us", v), 170, 50, 1)
        for run in ("a", "b")
        for v in ("f3", "m1")
    ]
    synthesize_files(jobs[:2], 16000)
    synthesize_files(jobs[2:], 16000)
    a, c, b, _ = (sf.read(job.path, dtype="float32")[0] for job in jobs)
    np.testing.assert_array_equal(a, b)
    assert len(a) > 16000 * 0.3 and np.abs(a).max() > 0.05
    assert len(a) != len(c) or not np.allclose(a, c)
    noisy = add_noise(a, 10.0, np.random.default_rng(0))
    loud = np.abs(a) > 1e-3
    snr = 10 * np.log10(np.mean(a[loud] ** 2) / np.mean((noisy - a) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)


def test_test_voices_are_never_heard_in_training():
    speakers = speakers_by_split(seed=3, val_variants=5, test_variants=7)
    variants = {split: {s.variant for s in group} for split, group in speakers.items()}
    assert len(variants["test"]) == 7 and len(variants["val"]) == 5
    assert not variants["test"] & variants["train"] and not variants["val"] & variants["train"]
    assert not variants["test"] & variants["val"]
    assert set().union(*variants.values()) == set(VARIANTS)
    with pytest.raises(DataError, match="none for training"):
        speakers_by_split(seed=3, val_variants=30, test_variants=30)
