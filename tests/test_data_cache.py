"""Sweep jobs with the same data settings share one prepared copy (rnnlab.data.cache)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rnnlab.data import cache
from rnnlab.data.cache import data_key, prepare_once, shared_paths


def test_the_key_follows_what_prepare_reads_and_the_input_bytes(tmp_path, compose_cfg) -> None:
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\na good film,positive\n", encoding="utf-8")
    text = ["task=classify", "data=text", f"data.path={csv}"]
    base = data_key(compose_cfg(text), tmp_path)
    # model and training settings do not change the data ...
    assert (
        data_key(compose_cfg([*text, "model=gru", "trainer.optimizer.lr=0.01"]), tmp_path) == base
    )
    # ... data settings, the seed (seeded splits) and the file's content do
    assert data_key(compose_cfg([*text, "data.min_freq=1"]), tmp_path) != base
    assert data_key(compose_cfg([*text, "seed=1"]), tmp_path) != base
    csv.write_text("text,label\na dull film,negative\n", encoding="utf-8")
    assert data_key(compose_cfg(text), tmp_path) != base


def test_parallel_jobs_prepare_once_and_share_the_copy(tmp_path, compose_cfg, monkeypatch):
    cfg = compose_cfg(["task=lm", "data=pydoc_topics", "data.max_chars=20000"])
    calls = []

    def slow_prepare(cfg, paths):  # long enough for the other jobs to arrive meanwhile
        calls.append(paths.root)
        time.sleep(0.3)
        paths.prepared_dir.mkdir(parents=True)
        return {"tokens": 20000}

    monkeypatch.setattr("rnnlab.data.prepare_task_data", slow_prepare)
    jobs = [
        shared_paths(cfg, tmp_path / "multirun" / str(i), tmp_path / "multirun") for i in range(4)
    ]
    summaries: list[dict] = []
    threads = [
        threading.Thread(target=lambda p=p: summaries.append(prepare_once(cfg, p))) for p in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and summaries == [{"tokens": 20000}] * 4
    assert len({p.prepared_dir for p in jobs}) == 1
    shared = jobs[0].prepared_dir
    assert shared.is_dir() and shared.is_relative_to(tmp_path / "multirun" / cache.CACHE_DIR)
    for i in range(4):  # each job folder links to the one copy instead of holding its own
        job_data = tmp_path / "multirun" / str(i) / "data"
        assert job_data.is_symlink() and (job_data / "prepared").resolve() == shared.resolve()


def test_a_real_prepare_into_the_shared_copy_is_read_by_training(tmp_path, compose_cfg) -> None:
    from rnnlab.tasks import get_task

    cfg = compose_cfg(
        [
            "task=lm",
            "data=pydoc_topics",
            "data.max_chars=20000",
            "task.bptt=8",
            "trainer.batch_size=4",
        ]
    )
    first, second = (shared_paths(cfg, tmp_path / str(i), tmp_path) for i in range(2))
    assert prepare_once(cfg, first) == prepare_once(cfg, second)
    data = get_task("lm").load_data(cfg, second)
    assert len(data.train) > 0 and Path(tmp_path / "1" / "data").is_symlink()
