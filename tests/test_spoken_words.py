"""Spoken-word classification through task=classify: generated words and your recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from rnnlab.data.audio import encode_wav
from rnnlab.data.classify import load_prepared
from rnnlab.errors import DataError
from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.stages.prepare import run_prepare
from rnnlab.tasks import get_task

TINY = ["task=classify", "data=spoken_words", "data.n_train=40", "data.n_val=20"]


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
