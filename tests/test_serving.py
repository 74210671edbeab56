"""End to end: train, promote, `mlflow models serve` the champion, compare HTTP with in-process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab.model_store import load_trained
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from rnnlab.registry import promote
from rnnlab.tasks import get_task

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def frame_body(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": frame.to_dict(orient="split", index=False)}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, quick_cfg) -> Iterator[dict]:
    """A quick trained model promoted to @champion and served on a free localhost port."""
    root = tmp_path_factory.mktemp("serve")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        paths = RunPaths(root / "job")
        run_pipeline(quick_cfg(), paths)
        promote("rnnlab-forecast", uri=uri)
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    cmd = ["mlflow", "models", "serve", "-m", "models:/rnnlab-forecast@champion"]
    cmd += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log = (root / "serve.log").open("w")
    server = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_ping(f"http://127.0.0.1:{port}/ping", server, root / "serve.log")
        yield {"url": f"http://127.0.0.1:{port}/invocations", "paths": paths}
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers, nothing else
        server.wait(timeout=30)
        log.close()


def _wait_for_ping(url: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow models serve exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"server not up after {timeout} s:\n{log.read_text()[-3000:]}")


def _history(paths: RunPaths) -> pd.DataFrame:
    raw = pd.read_csv(paths.raw_dir / "co2.csv")
    raw["co2"] = raw["co2"].interpolate()
    return raw[["co2"]].iloc[-300:]


def test_served_champion_answers_like_in_process_prediction(served):
    history = _history(served["paths"])
    status, body = post(served["url"], frame_body(history))
    assert status == 200, body
    trained = load_trained(served["paths"].model_dir)
    expected = get_task("forecast").predict_frame(trained, history)
    answer = pd.DataFrame(body["predictions"])
    assert list(answer.columns) == ["step", "co2"] and len(answer) == 8
    np.testing.assert_allclose(answer["co2"], expected["co2"], rtol=1e-9)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.rename(columns={"co2": "ppm"}), "missing inputs ['co2']"),
        (lambda h: h.iloc[-10:], "needs the last 52 (task.lookback) rows"),
        (lambda h: h.astype(str).assign(co2="high"), "Failed to convert column co2"),
        (lambda h: h.assign(co2=np.nan), "Input column `co2` row 0 is empty"),
    ],
    ids=["wrong-columns", "short-history", "wrong-dtype", "missing-values"],
)
def test_malformed_requests_get_400_with_the_reason(served, change, message):
    status, body = post(served["url"], frame_body(change(_history(served["paths"]))))
    assert status == 400, body
    assert message in body["message"]
    assert "Traceback" not in json.dumps(body) and "stack_trace" not in body


def post_raw(url: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _bad_bodies(history: pd.DataFrame) -> dict[str, bytes]:
    def frame(h: pd.DataFrame) -> bytes:
        return json.dumps(frame_body(h)).encode()  # NaN and Infinity as JSON's extensions

    def with_value(value: float) -> bytes:
        changed = history.copy()
        changed.iloc[-5, 0] = value
        return frame(changed)

    return {
        "malformed JSON": b'{"dataframe_split": {"columns": ["co2"], "data": [[1.0], ',
        "not a JSON object": b"[1, 2, 3]",
        "wrong columns": frame(history.rename(columns={"co2": "ppm"})),
        "NaN": with_value(float("nan")),
        "inf": with_value(float("inf")),
        "-inf": with_value(float("-inf")),
        "1e308": with_value(1e308),
        "10 MB of garbage": b"x" * 10_000_000,
    }


@pytest.mark.reliability
def test_server_answers_every_bad_request_with_4xx_and_stays_up(served):
    history = _history(served["paths"])
    bodies = _bad_bodies(history)
    for name, body in bodies.items():
        status, answer = post_raw(served["url"], body)
        assert 400 <= status < 500, (name, status, answer)
        assert answer.get("message"), (name, answer)
    # 1,000 bad requests in a bounded loop: each refused, none of them takes the server down.
    deadline = time.monotonic() + 600
    cycle = [bodies[k] for k in ("malformed JSON", "wrong columns", "inf", "1e308")]
    for i in range(1000):
        assert time.monotonic() < deadline, f"only {i} requests in 600 s"
        status, answer = post_raw(served["url"], cycle[i % len(cycle)])
        assert 400 <= status < 500 and answer.get("message"), (i, status, answer)
    status, answer = post(served["url"], frame_body(history))
    assert status == 200, answer
    assert len(answer["predictions"]) == 8
