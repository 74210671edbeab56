"""Spoken-word classification through task=classify: generated words and your recordings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from rnnlab.data.audio import encode_wav
from rnnlab.data.classify import load_prepared
from rnnlab.errors import ConfigError, DataError
from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.stages.prepare import run_prepare
from rnnlab.stages.train import run_train
from rnnlab.tasks import get_task

WORDS = ["task=classify", "data=spoken_words", "data.n_train=40", "data.n_val=20"]
TINY = [*WORDS, "data.noisy_copies=0"]  # the words as they are: small and quick


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory, compose_cfg) -> RunPaths:
    paths = RunPaths(tmp_path_factory.mktemp("words"))
    run_prepare(compose_cfg([*TINY, "data.n_test=20"]), paths)
    return paths


def test_generated_words_are_padded_frames_with_unseen_test_voices(words):
    meta, splits = load_prepared(words.prepared_dir)
    assert meta["kind"] == "audio" and meta["n_features"] == 40
    assert len(meta["classes"]) == 20 and {"yes", "stop", "zero", "nine"} <= set(meta["classes"])
    manifest = pd.read_csv(words.raw_dir / "manifest.csv")
    variant = manifest["speaker"].str.split("+").str[1]
    assert not set(variant[manifest["split"] == "test"]) & set(
        variant[manifest["split"] == "train"]
    )
    x, lengths = splits["train"]["x"], splits["train"]["lengths"]
    assert x.shape[0] == 40 and x.shape[2] == 40 and (lengths > 20).all()
    assert (x[np.arange(x.shape[1])[None, :] >= lengths[:, None]] == 0).all()  # zero padding


def test_noisy_copies_add_training_words_with_fresh_noise_and_change_nothing_else(
    words, compose_cfg, tmp_path: Path
):
    """data.noisy_copies=2: every training word twice more, each copy with its own noise;
    the originals, validation, test, the normalisation and the data digest stay as they are."""
    paths = RunPaths(tmp_path)
    shutil.copytree(words.raw_dir, paths.raw_dir)  # the generated audio, not synthesised again
    run_prepare(compose_cfg([*WORDS, "data.n_test=20", "data.noisy_copies=2"]), paths)
    meta, splits = load_prepared(paths.prepared_dir)
    plain_meta, plain = load_prepared(words.prepared_dir)
    assert (
        meta["raw_sha256"] == plain_meta["raw_sha256"]
        and meta["features"] == plain_meta["features"]
    )
    for split in ("val", "test"):
        np.testing.assert_array_equal(splits[split]["x"], plain[split]["x"])
    train, original = splits["train"], plain["train"]
    assert len(train["y"]) == 3 * 40
    for key in ("x", "y", "lengths"):
        np.testing.assert_array_equal(train[key][:40, ...], original[key])
    for copy in (1, 2):
        np.testing.assert_array_equal(train["y"][40 * copy : 40 * (copy + 1)], original["y"])
        np.testing.assert_array_equal(
            train["lengths"][40 * copy : 40 * (copy + 1)], original["lengths"]
        )
    n = int(original["lengths"][0])
    first, copy1, copy2 = (train["x"][k * 40, :n] for k in range(3))
    assert not np.allclose(first, copy1) and not np.allclose(copy1, copy2)


def test_audio_classifier_takes_paths_or_base64(words, untrained_model_dir):
    model_dir = untrained_model_dir([*TINY, "data.n_test=20", "model=bigru"])
    trained = load_trained(model_dir)
    raw = model_dir.parent / "data" / "raw"
    manifest = pd.read_csv(raw / "manifest.csv")
    files = [str(raw / p) for p in manifest["path"][-3:]]
    task = get_task("classify")
    by_path = task.predict_frame(trained, pd.DataFrame({"audio": files}))
    assert list(by_path.columns) == ["label", *(f"prob_{c}" for c in trained.meta["classes"])]
    np.testing.assert_allclose(by_path.filter(like="prob_").sum(axis=1), 1.0, atol=1e-5)
    waves = [sf.read(f, dtype="float32")[0] for f in files]
    encoded = pd.DataFrame({"audio": [encode_wav(w, 16000) for w in waves]})
    pd.testing.assert_frame_equal(task.predict_frame(trained, encoded), by_path, atol=1e-4)


def test_spec_augment_masks_training_words_and_still_trains(words, compose_cfg, tmp_path):
    """task.spec_augment on audio classification: every draw of a training example gets fresh
    masks on its real frames (the padding stays zero), validation is left alone, and a short
    training run (masks and mel-axis warp) still learns; on non-audio data, or the warp on
    MFCCs, the setting is refused."""
    plain_cfg = compose_cfg([*TINY, "data.n_test=20"])
    cfg = compose_cfg([*TINY, "data.n_test=20", "task.spec_augment=true", "task.time_width=30"])
    task = get_task("classify")
    plain, masked = task.load_data(plain_cfg, words), task.load_data(cfg, words)
    torch.manual_seed(0)
    first, second, original = masked.train[0], masked.train[0], plain.train[0]
    length = int(original["lengths"])
    assert int(first["lengths"]) == length and int(first["y"]) == int(original["y"])
    assert not torch.equal(first["x"], original["x"]) and not torch.equal(first["x"], second["x"])
    assert (first["x"][length:] == 0).all()
    zeroed = (first["x"][:length] == 0) & (original["x"][:length] != 0)
    assert zeroed.all(dim=1).any() or zeroed.all(dim=0).any()  # whole frames or whole bands
    assert torch.equal(masked.val[0]["x"], plain.val[0]["x"])

    quick = ["model.hidden_size=16", "trainer.max_epochs=3", "trainer.batch_size=8", "logger=none"]
    job = RunPaths(tmp_path / "job", data_root=words.root)
    result = run_train(
        compose_cfg(
            [*TINY, "data.n_test=20", "task.spec_augment=true", "task.freq_warp=0.1", *quick]
        ),
        job,
    )
    assert result["epochs"] == 3 and np.isfinite(result["best_val_loss"])
    assert 0 <= result["best_val_accuracy"] <= 1

    with pytest.raises(ConfigError, match=r"task\.spec_augment.*data=japanese_vowels"):
        compose_cfg(["task=classify", "data=japanese_vowels", "task.spec_augment=true"])
    with pytest.raises(ConfigError, match=r"task\.freq_warp.*data=japanese_vowels"):
        compose_cfg(["task=classify", "data=japanese_vowels", "task.freq_warp=0.1"])
    with pytest.raises(ConfigError, match=r"task\.freq_warp.*data\.features=mfcc"):
        compose_cfg([*TINY, "data.features=mfcc", "task.freq_warp=0.1"])


def _labelled_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, freq in (("low", 0.03), ("high", 0.2)):
        (root / label).mkdir(parents=True)
        for i in range(8):
            wave = 0.2 * np.sin(np.arange(6000) * freq) + 0.01 * rng.standard_normal(6000)
            sf.write(root / label / f"{label}{i}.wav", wave.astype(np.float32), 16000)
    return root


def test_a_folder_per_label_and_its_mistakes(compose_cfg, tmp_path):
    folder = _labelled_folder(tmp_path / "mine")
    cfg = compose_cfg(["task=classify", "data=audio_folder"], data={"path": str(folder)})
    paths = RunPaths(tmp_path / "job")
    run_prepare(cfg, paths)
    meta, splits = load_prepared(paths.prepared_dir)
    assert meta["classes"] == ["high", "low"]
    assert sum(len(s["y"]) for s in splits.values()) == 16
    before = (paths.prepared_dir / "meta.json").read_text()

    sf.write(folder / "loose.wav", np.ones(6000, np.float32) * 0.1, 16000)
    with pytest.raises(DataError, match=r"loose\.wav is not in a label sub-folder"):
        run_prepare(cfg, paths)
    (folder / "loose.wav").unlink()
    sf.write(folder / "low" / "low3.wav", np.zeros(6000, np.float32), 16000)
    with pytest.raises(DataError, match=r"low3\.wav is silent"):
        run_prepare(cfg, paths)
    assert (paths.prepared_dir / "meta.json").read_text() == before
