"""Speech recognition: error rates, training CPU time and real-time factor of acoustic models.

    python benchmarks/asr.py --quick               # seconds: tiny corpus, untrained GRU, speed only
    python benchmarks/asr.py --runs DIR [DIR ...]  # measure trained runs (Hydra job directories)
    python benchmarks/asr.py [--variants bigru gru]  # train variants on the default corpus first

For every run: validation CER and WER (greedy, by the saved best checkpoint over the run's
prepared validation split: what a choice between runs may look at), test CER and WER (greedy
and beam, from its ``metrics/test.json``), training
CPU-seconds (when this script trained it: ``getrusage`` of the child), and on one CPU thread
the real-time factor (CPU seconds per second of audio: features, network and greedy decoding)
of whole-utterance recognition; for a unidirectional recurrent model also of streaming
recognition in ``--chunk-ms`` chunks with the state carried, with the CPU latency per chunk
(p50/p99) and a check that streaming returns the same transcripts. CPU time, not wall time:
the machine may be shared.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, child_env, finish, md_table, options, python, start

os.environ.setdefault("OMP_NUM_THREADS", "1")

# The benchmark variants on the default generated corpus (data=synth_speech), on the task's
# presets (conf/task/asr.yaml: 2 x 128 bidirectional GRU, subsample 3, cosine, lr 6e-3,
# SpecAugment, mel-axis warp 0.1): the best bidirectional model, the streaming
# (unidirectional) one, and the non-recurrent baselines.
COMMON = ["task=asr", "data=synth_speech"]
VARIANTS: dict[str, list[str]] = {
    "bigru": [],
    # conf/experiment/streaming_asr.yaml: 3 x 256 GRU, running CMVN, 60 ms of lookahead, one
    # noisy copy, no SpecAugment masks, 26 epochs; about 1,100 CPU-s for the whole job
    "gru": ["experiment=streaming_asr"],
    "mlp": ["model=mlp", "model.hidden_size=256", "trainer.max_epochs=8"],
    "transformer": [
        "model=transformer",
        "model.hidden_size=96",
        "model.dim_feedforward=192",
        "trainer.max_epochs=8",
    ],
}
QUICK = [
    "data.n_train=16",
    "data.n_val=4",
    "data.n_test=8",
    "data.cmvn=running",  # streamable: the streaming path carries its statistics
    "model=gru",
    "model.hidden_size=64",
]
UTTERANCES = 40  # test utterances timed per run


def train(name: str, overrides: list[str], scratch: Path) -> tuple[Path, float]:
    """Train one variant through the Hydra app; its directory and the child's CPU-seconds."""
    job = scratch / name
    cmd = [python(), "-m", "rnnlab.app", *COMMON, *overrides, "trainer.num_threads=1"]
    cmd += ["logger=none", f"hydra.run.dir={job}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=REPO, env=child_env(), check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return job, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_audio(job: Path, sample_rate: int) -> tuple[list[Any], list[str]]:
    """The run's first test recordings (as the model hears them: noise added) and transcripts."""
    import pandas as pd

    from rnnlab.data.asr import TEXT
    from rnnlab.data.audio import FeaturePipeline
    from rnnlab.data.audio_sets import load_waves

    manifest = pd.read_csv(job / "data" / "raw" / "manifest.csv", keep_default_na=False)
    waves = load_waves(manifest, job / "data" / "raw", FeaturePipeline(sample_rate=sample_rate))
    test = [i for i, split in enumerate(manifest["split"]) if split == "test"][:UTTERANCES]
    return [waves[i] for i in test], [manifest[TEXT][i] for i in test]


def measure(job: Path, chunk_ms: float) -> dict[str, Any]:
    """Validation error rates, and real-time factors (and streaming latency) of the run's model
    on one thread."""
    import numpy as np
    import torch

    from rnnlab.data.asr import load_prepared, utterances
    from rnnlab.data.audio import FeaturePipeline
    from rnnlab.model_store import load_trained
    from rnnlab.paths import RunPaths
    from rnnlab.tasks.asr import decode, posteriors
    from rnnlab.tasks.asr_streaming import StreamingRecognizer
    from rnnlab.tasks.ctc import error_rates

    torch.set_num_threads(1)
    trained = load_trained(job / "models")
    pipeline = FeaturePipeline(**trained.meta["features"])
    alphabet = trained.meta["alphabet"]
    _, splits = load_prepared(RunPaths(job).prepared_dir)
    val = splits["val"]
    heard = decode(posteriors(trained.model, utterances(val)), alphabet, "greedy", 1)
    val_rates = error_rates(heard, [str(text) for text in val["texts"]])
    waves, _ = test_audio(job, pipeline.sample_rate)
    seconds = sum(len(w) for w in waves) / pipeline.sample_rate
    posteriors(trained.model, [pipeline(waves[0])])  # warm-up: librosa's lazy imports, caches
    started = time.thread_time()
    offline = decode(posteriors(trained.model, [pipeline(w) for w in waves]), alphabet, "greedy", 1)
    result: dict[str, Any] = {"rtf": (time.thread_time() - started) / seconds}
    result.update(val_cer=val_rates["cer"], val_wer=val_rates["wer"])
    if not trained.model.streamable:
        return result
    chunk = int(pipeline.sample_rate * chunk_ms / 1000)
    latencies, streamed = [], []
    for wave in waves:
        recognizer = StreamingRecognizer(trained.model, pipeline, alphabet)
        for offset in range(0, len(wave), chunk):
            began = time.thread_time()
            recognizer.accept(wave[offset : offset + chunk])
            latencies.append(time.thread_time() - began)
        began = time.thread_time()
        streamed.append(recognizer.finish())
        latencies.append(time.thread_time() - began)
    ms = np.array(latencies) * 1000
    result.update(
        streaming_rtf=sum(latencies) / seconds,
        chunk_p50_ms=float(np.percentile(ms, 50)),
        chunk_p99_ms=float(np.percentile(ms, 99)),
        streaming_equals_offline=streamed == offline,
    )
    return result


def quick_run(scratch: Path) -> Path:
    """A tiny corpus and an untrained GRU in the layout of a Hydra job (speed needs no training)."""
    import torch

    from rnnlab.config import compose, validate
    from rnnlab.model_store import save_trained
    from rnnlab.paths import RunPaths
    from rnnlab.stages.prepare import run_prepare
    from rnnlab.tasks import get_task

    cfg = validate(compose([*COMMON, *QUICK]))
    paths = RunPaths(scratch / "quick")
    run_prepare(cfg, paths)
    task = get_task("asr")
    meta = task.load_data(cfg, paths).meta
    torch.manual_seed(0)
    paths.model_dir.mkdir(parents=True)
    save_trained(paths.model_dir, cfg, meta, task.build_model(cfg, meta))
    return paths.root


def row(name: str, job: Path, cpu: float | None, speed: dict[str, Any]) -> list[Any]:
    from rnnlab.io import read_json

    metrics = read_json(job / "metrics" / "test.json")["test"] if name != "quick" else None
    rates = (
        [metrics["model"]["cer"], metrics["model"]["wer"], metrics["beam"]["cer"]]
        if metrics
        else ["-"] * 3
    )
    rates = [speed["val_cer"], speed["val_wer"], *rates]
    fmt = [f"{v:.3f}" if isinstance(v, float) else v for v in rates]
    streaming = (
        f"{speed['streaming_rtf']:.4f} ({speed['chunk_p50_ms']:.1f}/{speed['chunk_p99_ms']:.1f} ms"
        f"{'' if speed['streaming_equals_offline'] else ', DIFFERS'})"
        if "streaming_rtf" in speed
        else "-"
    )
    return [name, *fmt, f"{cpu:.0f}" if cpu else "-", f"{speed['rtf']:.4f}", streaming]


def main() -> None:
    parser = options(__doc__)
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="trained job dirs")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--keep", type=Path, default=None, help="keep trained runs here")
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    args = parser.parse_args()
    info = start(args)
    with tempfile.TemporaryDirectory(prefix="rnnlab-asr-") as tmp:
        scratch = args.keep or Path(tmp)
        jobs: list[tuple[str, Path, float | None]] = []
        if args.quick:
            jobs.append(("quick", quick_run(scratch), None))
        elif args.runs:
            jobs += [(job.name, job, None) for job in args.runs]
        else:
            for name in args.variants:
                job, cpu = train(name, VARIANTS[name], scratch)
                jobs.append((name, job, cpu))
        results = {name: measure(job, args.chunk_ms) for name, job, _ in jobs}
        rows = [row(name, job, cpu, results[name]) for name, job, cpu in jobs]
    header = [
        "model",
        "val CER",
        "val WER",
        "CER",
        "WER",
        "beam CER",
        "train CPU-s",
        "RTF",
        "streaming RTF (chunk p50/p99)",
    ]
    finish(info, md_table(header, rows), args.json, {"runs": results})


if __name__ == "__main__":
    main()
