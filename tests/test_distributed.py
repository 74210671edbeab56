"""Multi-process training launched by torchrun, as on a cluster (slow: real processes, gloo).

Two processes with batch B take the same optimisation steps as one process with batch 2B:
both go through Lightning's DistributedSampler, which shuffles one seeded permutation and deals
it out rank by rank, and DDP averages the two halves' gradients. Only the order of
floating-point sums differs, hence a (tight) tolerance. The last, partial batch is left out:
there the sampler pads an odd count with a duplicate window, a real but different step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from rnnlab.config import dump_params
from rnnlab.io import read_json
from rnnlab.lightning import external_launch, is_primary_process
from rnnlab.lightning.trainer import build_trainer

BATCH = 32
TOLERANCE = 1e-4  # relative, on validation loss and test metrics after two epochs (seen: 4e-6)


def _torchrun(workdir: Path, processes: int, batch_size: int, overrides: list[str]) -> None:
    params = [*overrides, f"trainer.batch_size={batch_size}"]
    (workdir / "params.yaml").write_text(dump_params(params), encoding="utf-8")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
    }
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    commands = [
        [sys.executable, "-m", "rnnlab.stages.prepare"],
        [*torchrun, f"--nproc_per_node={processes}", "-m", "rnnlab.stages.train"],
        [sys.executable, "-m", "rnnlab.stages.evaluate"],
    ]
    for command in commands:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


TORCHRUN_NODE_1 = {  # what torchrun sets in the first process of the second machine
    "TORCHELASTIC_RUN_ID": "job",
    "RANK": "4",
    "GROUP_RANK": "1",
    "LOCAL_RANK": "0",
    "LOCAL_WORLD_SIZE": "4",
    "WORLD_SIZE": "8",
}


def test_launcher_ranks_decide_the_primary_process_and_the_process_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RANK", "GROUP_RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert is_primary_process() and external_launch() is None
    with monkeypatch.context() as env:
        for name, value in TORCHRUN_NODE_1.items():
            env.setenv(name, value)
        assert not is_primary_process()  # local rank 0, but not the first machine
        assert external_launch() == (4, 2)
    with monkeypatch.context() as env:
        slurm = {"SLURM_NTASKS": "6", "SLURM_NTASKS_PER_NODE": "3(x2)", "SLURM_NNODES": "2"}
        for name, value in {**slurm, "SLURM_PROCID": "0"}.items():
            env.setenv(name, value)
        assert is_primary_process() and external_launch() == (3, 2)
        env.setenv("SLURM_PROCID", "5")
        assert not is_primary_process()


def test_ddp_spawn_joins_processes_that_torchrun_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, quick_cfg
) -> None:
    cfg = quick_cfg("logger=none", "trainer=ddp", "trainer.accelerator=cpu")
    for name, value in {**TORCHRUN_NODE_1, "RANK": "0", "GROUP_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    trainer, _ = build_trainer(cfg.trainer, tmp_path, logger=False)
    assert type(trainer.strategy).__name__ == "DDPStrategy"  # not spawning 2 more each
    assert (trainer.num_nodes, trainer.num_devices, trainer.world_size) == (2, 4, 8)


@pytest.mark.slow
def test_two_torchrun_processes_match_one_with_the_doubled_batch(
    tmp_path: Path, quick_overrides: list[str]
) -> None:
    overrides = [
        *quick_overrides,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=2",
        "trainer.num_threads=1",
        "model.dropout=0.0",
        "trainer.limit_train_batches=0.97",  # 24 of 25 batches: the full ones
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    for workdir in (one, two):
        workdir.mkdir()
    _torchrun(one, processes=1, batch_size=2 * BATCH, overrides=overrides)
    _torchrun(two, processes=2, batch_size=BATCH, overrides=overrides)

    trained = [read_json(d / "metrics/train.json") for d in (one, two)]
    assert trained[0]["epochs"] == trained[1]["epochs"] == 2
    assert trained[1]["best_val_loss"] == pytest.approx(trained[0]["best_val_loss"], TOLERANCE)
    tested = [read_json(d / "metrics/test.json")["test"]["model"] for d in (one, two)]
    for name, value in tested[0].items():
        assert tested[1][name] == pytest.approx(value, TOLERANCE), name

    # Rank 0 alone tracks: one finished run, with its model and the test metrics.
    client = MlflowClient(f"sqlite:///{two / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnlab-forecast")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "test/model/mase" in runs[0].data.metrics
    assert client.search_logged_models([experiment.experiment_id])
