"""The default DVC remote: push from one checkout, pull into a fresh clone, nothing retrained.

The remote in `.dvc/config` is `../rnnlab-dvc-storage`, a folder beside the repository, so a
clone next to it shares it out of the box; experiments travel through a git remote (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_dvc_pipeline import _sh, repo_copy  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def test_push_then_pull_into_a_fresh_clone_restores_data_and_models(repo_copy: Path) -> None:  # noqa: F811
    _sh(["dvc", "repro"], repo_copy)
    _sh(["git", "add", "-A"], repo_copy)  # dvc.lock, and the metrics and plots kept in git
    _sh([*GIT, "commit", "-qm", "trained"], repo_copy)
    trained_model = (repo_copy / "models/model.pt").read_bytes()
    pushed = _sh(["dvc", "push"], repo_copy)
    storage = repo_copy.parent / "rnnlab-dvc-storage"
    assert storage.is_dir() and "pushed" in pushed.stdout

    # An experiment goes to a git remote (its refs) and to the DVC remote (its data).
    origin = repo_copy.parent / "origin.git"
    _sh(["git", "init", "-q", "--bare", str(origin)], repo_copy)
    _sh(["git", "remote", "add", "origin", str(origin)], repo_copy)
    _sh(["git", "push", "-q", "origin", "HEAD:main"], repo_copy)
    _sh(["dvc", "exp", "run", "-n", "wider", "-S", "model.hidden_size=12"], repo_copy)
    _sh(["dvc", "exp", "push", "origin", "wider"], repo_copy)

    clone = repo_copy.parent / "clone"
    _sh(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], repo_copy.parent)
    assert not (clone / "models").exists()
    _sh(["dvc", "pull"], clone)
    assert (clone / "models/model.pt").read_bytes() == trained_model
    assert "up to date" in _sh(["dvc", "status"], clone).stdout
    assert "Data and pipelines are up to date" in _sh(["dvc", "repro"], clone).stdout

    _sh(["dvc", "exp", "pull", "origin", "wider"], clone)
    _sh(["dvc", "exp", "apply", "wider"], clone)
    assert "hidden_size: 12" in (clone / "models/config.yaml").read_text()
    assert "up to date" in _sh(["dvc", "status"], clone).stdout
    shown = json.loads(_sh(["dvc", "metrics", "show", "--json"], clone).stdout)
    assert "metrics/test.json" in json.dumps(shown)
