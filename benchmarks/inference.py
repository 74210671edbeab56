"""Inference speed of the default forecasting LSTM: eager PyTorch, TorchScript, ONNX Runtime, HTTP.

Single-sequence latency (one window (1, lookback, F), p50/p99 over ``--iterations`` calls after a
warm-up) and batch throughput (windows per second at ``--batch``, from the median of 30 calls)
for the network alone in each runtime, all on one CPU thread; then the same model as a served
MLflow pyfunc (``mlflow models serve --env-manager local``): the HTTP round trip of one request
carrying ``lookback`` rows of raw history, with JSON, schema checks, scaling and unscaling.

    python benchmarks/inference.py [--model models] [--iterations 500] [--batch 256] [--json out]

``--model`` is a trained-model directory (default: the pipeline's ``models/``, the default LSTM
after ``dvc repro``); the latencies do not depend on how well it was trained.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, child_env, machine_info, machine_line, md_table, sigterm_exits, write_json

os.environ.setdefault("OMP_NUM_THREADS", "1")


def call_seconds(run: Callable[[], Any], calls: int, warmup: int) -> list[float]:
    """Wall time of each of ``calls`` calls of ``run``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times


def percentiles(run: Callable[[], Any], iterations: int, warmup: int) -> dict[str, float]:
    import numpy as np

    ms = np.array(call_seconds(run, iterations, warmup)) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def throughput(run: Callable[[], Any], batch: int, calls: int = 30) -> float:
    """Windows per second from the median batch time (robust to bursts of load on a shared
    machine, unlike total wall time)."""
    import numpy as np

    return batch / float(np.median(call_seconds(run, calls, warmup=1)))


def runtimes(trained: Any, scratch: Path) -> dict[str, Callable[[Any], Any]]:
    """name -> function of a float32 numpy batch (B, T, F)."""
    import torch

    from rnnlab.export import (
        export_model,
        load_torchscript,
        onnx_session,
        run_onnx,
    )

    scripted = load_torchscript(export_model(trained, "torchscript", scratch / "model.pt").path)
    session = onnx_session(export_model(trained, "onnx", scratch / "model.onnx").path, threads=1)

    def eager(x: Any) -> Any:
        with torch.inference_mode():
            return trained.model(torch.from_numpy(x))

    def torchscript(x: Any) -> Any:
        with torch.inference_mode():
            return scripted(torch.from_numpy(x))

    return {
        "eager PyTorch": eager,
        "TorchScript": torchscript,
        "ONNX Runtime": lambda x: run_onnx(session, x),
    }


def measure_network(trained: Any, scratch: Path, iterations: int, batch: int) -> list[dict]:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    features, lookback = trained.meta["n_features"], int(trained.cfg.task.lookback)
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, lookback, features), dtype=np.float32)
    many = rng.standard_normal((batch, lookback, features), dtype=np.float32)
    rows = []
    for name, run in runtimes(trained, scratch).items():
        latency = percentiles(
            lambda run=run: run(one), iterations, warmup=max(20, iterations // 10)
        )
        rate = throughput(lambda run=run: run(many), batch)
        rows.append({"runtime": name, **latency, "windows_per_s": rate})
    return rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_http(model_dir: Path, scratch: Path, iterations: int) -> dict[str, float]:
    """Log the model as rnnlab's pyfunc in a scratch MLflow store, serve it, time requests."""
    import json
    import urllib.request

    import mlflow
    import pandas as pd

    from rnnlab.model_store import load_trained
    from rnnlab.pyfunc import log_pyfunc
    from rnnlab.tasks import get_task
    from rnnlab.tracking import ensure_experiment

    uri = f"sqlite:///{scratch / 'mlflow.db'}"
    trained = load_trained(model_dir)
    lookback = int(trained.cfg.task.lookback)
    raw = pd.read_csv(REPO / "data" / "raw" / f"{trained.meta['dataset']}.csv")
    columns = [*trained.meta["target_columns"], *trained.meta["covariate_columns"]]
    history = raw[columns].interpolate().iloc[-lookback:]
    run_id = mlflow.MlflowClient(uri).create_run(ensure_experiment(uri, "bench")).info.run_id
    log_pyfunc(uri, run_id, model_dir, history)
    in_process = get_task(trained.cfg.task.name)
    local = percentiles(lambda: in_process.predict_frame(trained, history), iterations, 20)

    port = _free_port()
    env = {**child_env(), "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    cmd = ["mlflow", "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local"]
    cmd += ["-h", "127.0.0.1", "-p", str(port)]
    log = (scratch / "serve.log").open("w")
    server = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    body = json.dumps({"dataframe_split": history.to_dict(orient="split", index=False)}).encode()
    url = f"http://127.0.0.1:{port}"

    def request() -> None:
        post = urllib.request.Request(
            f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
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
        http = percentiles(request, iterations, warmup=20)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    return {
        "in_process_p50_ms": local["p50_ms"],
        "in_process_p99_ms": local["p99_ms"],
        "http_p50_ms": http["p50_ms"],
        "http_p99_ms": http["p99_ms"],
        "rows": lookback,
    }


def markdown(
    info: dict, model: str, batch: int, iterations: int, net: list[dict], http: dict
) -> str:
    table = md_table(
        [
            "runtime",
            "latency p50 (ms)",
            "latency p99 (ms)",
            f"throughput at batch {batch} (windows/s)",
        ],
        [
            [r["runtime"], f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['windows_per_s']:,.0f}"]
            for r in net
        ],
    )
    text = (
        f"{machine_line(info)}\n\nModel: {model}. Single-sequence latency over {iterations} calls "
        f"(one thread).\n\n{table}\n"
    )
    if not http:  # --skip-http
        return text
    served = md_table(
        ["path", "p50 (ms)", "p99 (ms)"],
        [
            [
                "pyfunc `predict` in process (raw table in, forecast out)",
                f"{http['in_process_p50_ms']:.2f}",
                f"{http['in_process_p99_ms']:.2f}",
            ],
            [
                "HTTP round trip to `mlflow models serve`",
                f"{http['http_p50_ms']:.2f}",
                f"{http['http_p99_ms']:.2f}",
            ],
        ],
    )
    return (
        f"{text}\nServed model, one request with {http['rows']} rows of raw history "
        f"({iterations} requests, client and server on the same machine):\n\n{served}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO / "models")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sigterm_exits()

    from rnnlab.model_store import load_trained

    info = machine_info()
    scratch = Path(tempfile.mkdtemp(prefix="rnnlab-bench-"))
    try:
        snapshot = scratch / "model_dir"  # a concurrent `dvc repro` must not swap it mid-run
        shutil.copytree(args.model, snapshot, ignore=shutil.ignore_patterns("*.ckpt"))
        trained = load_trained(snapshot)
        cfg = trained.cfg
        model = (
            f"{cfg.model.name} (hidden {cfg.model.hidden_size}, {cfg.model.num_layers} layers), "
            f"lookback {cfg.task.lookback}, horizon {cfg.task.horizon}"
        )
        net = measure_network(trained, scratch, args.iterations, args.batch)
        http = {} if args.skip_http else measure_http(snapshot, scratch, args.iterations)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_json(args.json, {"machine": info, "model": model, "network": net, "served": http})
    print(markdown(info, model, args.batch, args.iterations, net, http))


if __name__ == "__main__":
    main()
