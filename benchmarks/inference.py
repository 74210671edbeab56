"""Inference speed of the default forecasting LSTM: eager PyTorch, TorchScript, ONNX Runtime, HTTP.

The network alone in each runtime on one CPU thread: latency of one window (p50/p99 over
``--iterations`` calls after a warm-up) and windows per second at ``--batch`` (median of 30
calls). Then the model as rnnlab's MLflow pyfunc: ``predict`` in process, and the HTTP round trip
to ``mlflow models serve --env-manager local`` with ``lookback`` rows of raw history as JSON.
``--model``: a trained-model directory (default: ``models/`` after ``dvc repro``, its raw data
read from ``data/raw`` beside it). ``--quick`` trains the quick experiment for one epoch here
and skips the HTTP server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import REPO, child_env, finish, md_table, options, start

os.environ.setdefault("OMP_NUM_THREADS", "1")


def timings(run: Callable[[], Any], calls: int, warmup: int) -> Any:
    """Seconds of each of ``calls`` calls of ``run``, after ``warmup`` untimed ones."""
    import numpy as np

    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def latency(run: Callable[[], Any], calls: int, warmup: int = 20) -> list[float]:
    import numpy as np

    return [float(np.percentile(timings(run, calls, warmup) * 1000, p)) for p in (50, 99)]


def quick_model(scratch: Path) -> Path:
    """The quick experiment trained for one epoch on the default data (no MLflow)."""
    from rnnlab.config import compose, validate
    from rnnlab.paths import RunPaths
    from rnnlab.pipeline import run_pipeline

    paths = RunPaths(scratch / "quick")
    cfg = validate(compose(["experiment=quick", "logger=none", "trainer.max_epochs=1"]))
    run_pipeline(cfg, paths)
    return paths.model_dir


def measure_network(trained: Any, scratch: Path, iterations: int, batch: int) -> list[list]:
    import numpy as np
    import torch

    from rnnlab.export import export_model, load_torchscript, onnx_session, run_onnx

    torch.set_num_threads(1)
    scripted = load_torchscript(export_model(trained, "torchscript", scratch / "model.pt").path)
    session = onnx_session(export_model(trained, "onnx", scratch / "model.onnx").path, threads=1)
    shape = (int(trained.cfg.task.lookback), trained.meta["n_features"])
    one, many = (
        np.random.default_rng(0).standard_normal((n, *shape), np.float32) for n in (1, batch)
    )
    runtimes = {
        "eager PyTorch": lambda x: trained.model(torch.from_numpy(x)),
        "TorchScript (traced)": lambda x: scripted(torch.from_numpy(x)),
        "ONNX Runtime": lambda x: run_onnx(session, x),
    }
    rows = []
    with torch.inference_mode():
        for name, run in runtimes.items():
            p50, p99 = latency(lambda run=run: run(one), iterations, max(20, iterations // 10))
            rate = batch / float(np.median(timings(lambda run=run: run(many), 30, warmup=1)))
            rows.append([name, f"{p50:.3f}", f"{p99:.3f}", f"{rate:,.0f}"])
    return rows


def measure_served(model_dir: Path, scratch: Path, iterations: int, http: bool) -> list[list]:
    """Log the model as rnnlab's pyfunc in a scratch MLflow store, serve it, time requests."""
    import mlflow
    import pandas as pd

    from rnnlab.model_store import load_trained
    from rnnlab.pyfunc import log_pyfunc
    from rnnlab.tasks import get_task
    from rnnlab.tracking import ensure_experiment

    uri = f"sqlite:///{scratch / 'mlflow.db'}"
    trained = load_trained(model_dir)
    raw = pd.read_csv(model_dir.parent / "data" / "raw" / f"{trained.meta['dataset']}.csv")
    columns = [*trained.meta["target_columns"], *trained.meta["covariate_columns"]]
    history = raw[columns].interpolate().iloc[-int(trained.cfg.task.lookback) :]
    run_id = mlflow.MlflowClient(uri).create_run(ensure_experiment(uri, "bench")).info.run_id
    log_pyfunc(uri, run_id, model_dir, history)
    task = get_task(trained.cfg.task.name)
    in_process = latency(lambda: task.predict_frame(trained, history), iterations)
    rows = [["pyfunc `predict` in process", *(f"{ms:.2f}" for ms in in_process)]]
    if not http:
        return rows

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**child_env(), "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    command = ["mlflow", "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager"]
    command += ["local", "-h", "127.0.0.1", "-p", str(port)]
    log = (scratch / "serve.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    body = json.dumps({"dataframe_split": history.to_dict(orient="split", index=False)}).encode()
    headers = {"Content-Type": "application/json"}

    def request() -> None:
        post = urllib.request.Request(f"{url}/invocations", data=body, headers=headers)
        with urllib.request.urlopen(post, timeout=30) as response:
            response.read()

    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((scratch / "serve.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        trips = latency(request, iterations)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    return [*rows, ["HTTP round trip to `mlflow models serve`", *(f"{ms:.2f}" for ms in trips)]]


def main() -> None:
    parser = options(__doc__)
    parser.add_argument("--model", type=Path, default=REPO / "models")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    info = start(args)
    if args.quick:
        args.iterations, args.batch = 20, 16

    from rnnlab.model_store import load_trained

    scratch = Path(tempfile.mkdtemp(prefix="rnnlab-bench-"))
    try:
        source = quick_model(scratch) if args.quick else args.model
        snapshot = scratch / "snapshot" / "models"  # a concurrent `dvc repro` must not swap it
        shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns("*.ckpt"))
        shutil.copytree(source.parent / "data" / "raw", snapshot.parent / "data" / "raw")
        trained = load_trained(snapshot)
        cfg = trained.cfg
        model = f"{cfg.model.name} ({cfg.model.num_layers} x {cfg.model.hidden_size}), "
        model += f"lookback {cfg.task.lookback}, horizon {cfg.task.horizon}"
        network = measure_network(trained, scratch, args.iterations, args.batch)
        served = measure_served(snapshot, scratch, args.iterations, http=not args.quick)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    header = ["runtime", "latency p50 (ms)", "latency p99 (ms)"]
    header.append(f"throughput at batch {args.batch} (windows/s)")
    text = f"\nModel: {model}; {args.iterations} calls per latency.\n\n"
    text += md_table(header, network) + "\n\n"
    header = ["served model, one forecast from raw history", "p50 (ms)", "p99 (ms)"]
    text += md_table(header, served)
    finish(info, text, args.json, {"model": model, "network": network, "served": served})


if __name__ == "__main__":
    main()
