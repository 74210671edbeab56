"""Speech recognition end to end on a tiny generated corpus: prepare, train, evaluate, the
logged model and batch prediction over a folder; your own recordings and their mistakes."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from rnnlab.data.asr import load_prepared, utterances
from rnnlab.errors import DataError
from rnnlab.io import read_json
from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from rnnlab.predict import predict_file
from rnnlab.stages.prepare import run_prepare
from rnnlab.tasks import get_task

TINY = (
    "task=asr",
    "data=synth_speech",
    "data.n_train=24",
    "data.n_val=6",
    "data.n_test=6",
    "model=gru",
    "model.hidden_size=16",
    "model.num_layers=1",
    "trainer.max_epochs=2",
    "trainer.num_threads=1",
    "trainer.grad_flow_batches=0",
)


@pytest.fixture(scope="module")
def asr_run(tmp_path_factory: pytest.TempPathFactory, compose_cfg) -> dict:
    """The tiny corpus synthesised, a model trained for two epochs, evaluated and logged."""
    root = tmp_path_factory.mktemp("asr")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = compose_cfg(list(TINY))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        paths = RunPaths(root / "job")
        result = run_pipeline(cfg, paths)
    return {"cfg": cfg, "paths": paths, "uri": uri, "result": result}


def test_generated_corpus_hears_new_voices_in_test_and_is_cached(asr_run):
    paths = asr_run["paths"]
    manifest = pd.read_csv(paths.raw_dir / "manifest.csv")
    assert manifest["split"].value_counts().to_dict() == {"train": 24, "val": 6, "test": 6}
    variant = manifest["speaker"].str.split("+").str[1]
    assert not set(variant[manifest["split"] == "test"]) & set(
        variant[manifest["split"] == "train"]
    )
    meta, splits = load_prepared(paths.prepared_dir)
    train = np.concatenate(utterances(splits["train"]))
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=0.05)  # training statistics
    assert meta["alphabet"][0] == "_" and meta["features"]["mean"]
    # Same settings again: the audio is re-used, not synthesised again.
    first = (paths.raw_dir / manifest["path"][0]).stat().st_mtime_ns
    run_prepare(asr_run["cfg"], paths)
    assert (paths.raw_dir / manifest["path"][0]).stat().st_mtime_ns == first


def test_evaluation_reports_error_rates_examples_and_posteriorgrams(asr_run):
    metrics = read_json(asr_run["paths"].metrics_dir / "test.json")["test"]
    for name in ("model", "beam", "prior"):
        assert metrics[name]["cer"] >= 0 and metrics[name]["wer"] >= 0
    assert metrics["utterances"] == 6
    plots = asr_run["paths"].plots_dir / "evaluate"
    assert (plots / "asr_posteriorgram.png").stat().st_size > 10_000
    examples = pd.read_csv(plots / "asr_examples.csv")
    assert {"reference", "greedy", "beam", "speaker"} <= set(examples.columns)


def test_validation_cer_is_the_greedy_error_rate_and_is_recorded(asr_run):
    """val/cer: greedy decoding (repeats merged, blanks dropped) against the references, by
    edit distance over reference characters; logged per epoch, its best-checkpoint value kept."""
    import torch

    # The frames decode greedily to ids [1, 3] and [2]; the references are [1, 2, 3] and [2].
    best = [[1, 1, 0, 3], [2, 0, 0, 0]]
    log_probs = torch.nn.functional.one_hot(torch.tensor(best), 5).float().log_softmax(-1)
    batch = {"y": torch.tensor([[1, 2, 3], [2, 0, 0]]), "target_lengths": torch.tensor([3, 1])}
    figures = get_task("asr").val_metrics((log_probs, torch.tensor([4, 4])), batch)
    assert float(figures["cer"]) == pytest.approx(1 / 4)  # one deletion in four characters

    paths = asr_run["paths"]
    curve = pd.read_csv(paths.plots_dir / "learning_curve.csv")
    assert "val_cer" in curve.columns and curve["val_cer"].between(0, 2).all()
    assert 0 <= read_json(paths.metrics_dir / "train.json")["best_val_cer"] <= 2


def test_monitoring_validation_cer_keeps_the_epoch_with_the_lowest(compose_cfg, tmp_path):
    cfg = compose_cfg([*TINY, "logger=none", "trainer.max_epochs=4", "task.monitor=val/cer"])
    paths = RunPaths(tmp_path)
    run_pipeline(cfg, paths)
    curve = pd.read_csv(paths.plots_dir / "learning_curve.csv")
    kept = curve.loc[curve["val_cer"].idxmin()]  # the first of equals, as the checkpoint keeps
    train = read_json(paths.metrics_dir / "train.json")
    assert train["best_val_cer"] == pytest.approx(kept["val_cer"])
    assert train["best_val_loss"] == pytest.approx(kept["val_loss"])  # that epoch's loss


def test_logged_model_takes_files_or_base64_and_answers_like_the_task(asr_run, tmp_path):
    from rnnlab.data.audio import encode_wav

    paths = asr_run["paths"]
    trained = load_trained(paths.model_dir)
    manifest = pd.read_csv(paths.raw_dir / "manifest.csv")
    files = [str(paths.raw_dir / p) for p in manifest["path"][-3:]]
    expected = get_task("asr").predict_frame(trained, pd.DataFrame({"audio": files}))
    run_id = read_json(paths.run_info)["run_id"]
    mlflow.set_tracking_uri(asr_run["uri"])
    logged = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    pd.testing.assert_frame_equal(logged.predict(pd.DataFrame({"audio": files})), expected)
    waves = [sf.read(f, dtype="float32")[0] for f in files]
    encoded = pd.DataFrame({"audio": [encode_wav(w, 16000) for w in waves]})
    pd.testing.assert_frame_equal(logged.predict(encoded), expected)

    # python -m rnnlab.predict over a folder of WAV files: one row per file, by name.
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, wave in enumerate(waves):
        sf.write(folder / f"clip{i}.wav", wave, 16000)
    written = predict_file(trained, folder, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert written == 3 and list(out["file"]) == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert list(out["transcript"]) == list(expected["transcript"])


# --- your own recordings ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve recordings of three speakers (tones standing in for speech), in a manifest."""
    folder = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        speaker = f"spk{i % 3}"
        wave = 0.2 * np.sin(np.arange(8000) * (0.05 + 0.01 * i)) + 0.01 * rng.standard_normal(8000)
        sf.write(folder / f"utt{i}.wav", wave.astype(np.float32), 16000)
        rows.append(
            {
                "path": f"utt{i}.wav",
                "transcript": f"Hello  World {['one', 'two'][i % 2]}",
                "speaker": speaker,
            }
        )
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def _files_cfg(compose_cfg, manifest: Path):
    return compose_cfg(
        ["task=asr", "data=speech_files", "data.val_fraction=0.3", "data.test_fraction=0.3"],
        data={"path": str(manifest)},
    )


def test_your_recordings_are_split_by_speaker(recordings, compose_cfg, tmp_path):
    paths = RunPaths(tmp_path)
    run_prepare(_files_cfg(compose_cfg, recordings / "manifest.csv"), paths)
    manifest = pd.read_csv(paths.raw_dir / "manifest.csv")
    assert manifest.groupby("speaker")["split"].nunique().max() == 1
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert manifest["transcript"][0] == "hello world one"  # lower case, single spaces
    assert manifest["sha256"].str.len().eq(64).all()


def _break(folder: Path, how: str) -> str:
    """Damage recording utt3 (or its row) one way; return the message expected."""
    manifest = pd.read_csv(folder / "manifest.csv")
    if how == "missing":
        manifest.loc[3, "path"] = "gone.wav"
        expected = "gone.wav not found"
    elif how == "unreadable":
        (folder / "utt3.wav").write_bytes(b"RIFF garbage")
        expected = "utt3.wav cannot be read as audio"
    elif how == "silent":
        sf.write(folder / "utt3.wav", np.zeros(8000, np.float32), 16000)
        expected = "utt3.wav is silent"
    elif how == "empty":
        sf.write(folder / "utt3.wav", np.zeros(0, np.float32), 16000)
        expected = "utt3.wav is empty"
    elif how == "no transcript":
        manifest.loc[3, "transcript"] = "  "
        expected = "transcript of .*utt3.wav is empty"
    else:  # a character outside the alphabet
        manifest.loc[3, "transcript"] = "hello 42"
        expected = r"utt3.wav has character\(s\) \['2', '4'\] outside data.alphabet"
    manifest.to_csv(folder / "manifest.csv", index=False)
    return expected


@pytest.mark.parametrize(
    "how", ["missing", "unreadable", "silent", "empty", "no transcript", "alphabet"]
)
def test_bad_recordings_stop_prepare_naming_the_file_and_keep_results(
    recordings, compose_cfg, tmp_path, how
):
    import shutil

    folder = tmp_path / "mine"
    shutil.copytree(recordings, folder)
    # Stereo and another sample rate are fine: mixed down and resampled.
    sf.write(folder / "utt5.wav", np.stack([np.sin(np.arange(22050) * 0.07)] * 2, 1), 22050)
    paths = RunPaths(tmp_path / "job")
    cfg = _files_cfg(compose_cfg, folder / "manifest.csv")
    run_prepare(cfg, paths)
    before = (paths.prepared_dir / "train.npz").read_bytes()
    expected = _break(folder, how)
    with pytest.raises(DataError, match=expected):
        run_prepare(cfg, paths)
    assert (paths.prepared_dir / "train.npz").read_bytes() == before


@pytest.mark.slow
def test_served_model_transcribes_a_posted_wav(asr_run):
    """`mlflow models serve --env-manager local` on 127.0.0.1: a base64 WAV in, the same
    transcript out as in process; a request without audio gets 400 with the reason."""
    import os
    import signal
    import subprocess
    import sys

    from rnnlab.data.audio_sets import example_audio
    from test_serving import _free_port, _wait_for_ping, frame_body, post

    paths = asr_run["paths"]
    run_id = read_json(paths.run_info)["run_id"]
    frame = example_audio(paths.raw_dir, 16000)
    expected = get_task("asr").predict_frame(load_trained(paths.model_dir), frame)
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": asr_run["uri"], "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    cmd = ["mlflow", "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local"]
    log_path = paths.root / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*cmd, "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_ping(f"http://127.0.0.1:{port}/ping", server, log_path)
            url = f"http://127.0.0.1:{port}/invocations"
            status, body = post(url, frame_body(frame))
            assert status == 200
            assert [p["transcript"] for p in body["predictions"]] == list(expected["transcript"])
            status, body = post(url, frame_body(frame.rename(columns={"audio": "sound"})))
            assert status == 400 and "audio" in body["message"]
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def test_a_folder_of_recordings_with_transcripts_beside_them(recordings, compose_cfg, tmp_path):
    folder = tmp_path / "mine"
    for i, wav in enumerate(sorted(recordings.glob("*.wav"))):
        speaker = folder / f"spk{i % 3}"
        speaker.mkdir(parents=True, exist_ok=True)
        (speaker / wav.name).write_bytes(wav.read_bytes())
        (speaker / wav.with_suffix(".txt").name).write_text(["clip one\n", "clip two\n"][i % 2])
    cfg = _files_cfg(compose_cfg, folder)
    paths = RunPaths(tmp_path / "job")
    run_prepare(cfg, paths)
    manifest = pd.read_csv(paths.raw_dir / "manifest.csv", keep_default_na=False)
    assert len(manifest) == 12 and manifest.groupby("speaker")["split"].nunique().max() == 1
    (folder / "spk0" / "utt0.txt").unlink()
    with pytest.raises(DataError, match=r"utt0\.wav has no transcript"):
        run_prepare(cfg, paths)
