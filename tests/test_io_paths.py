"""Atomic writes that never leave half a result, and where the repository root is."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.paths import repo_root

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def test_atomic_dir_replaces_target_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as staging:
        assert staging != target and staging.parent == tmp_path
        (staging / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # not swapped in yet
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_creates_missing_target(tmp_path):
    target = tmp_path / "a" / "b"
    with atomic_dir(target) as staging:
        (staging / "x").write_text("1")
    assert (target / "x").read_text() == "1"


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_dir_keeps_old_content_on_error(tmp_path, exc):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(type(exc)), atomic_dir(target) as staging:
        (staging / "keep.txt").write_text("half-written")
        (staging / "partial.txt").write_text("x")
        raise exc
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging dirs left


def test_atomic_dir_error_without_previous_target(tmp_path):
    with pytest.raises(ValueError), atomic_dir(tmp_path / "out"):
        raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_write_json_round_trip(tmp_path):
    path = tmp_path / "sub" / "x.json"
    write_json(path, {"b": [1, 2.5], "a": None})
    assert read_json(path) == {"a": None, "b": [1, 2.5]}
    assert path.read_text().startswith('{\n  "a": null')  # sorted keys, indented
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_dir_output_has_normal_directory_permissions(tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    with atomic_dir(tmp_path / "out"):
        pass
    assert oct(_mode(tmp_path / "out")) == oct(_mode(reference))


def test_write_json_output_has_normal_file_permissions(tmp_path):
    reference = tmp_path / "reference.json"
    reference.write_text("{}")
    write_json(tmp_path / "meta.json", {})
    assert oct(_mode(tmp_path / "meta.json")) == oct(_mode(reference))


def test_repo_root_honours_dvc_root(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    elsewhere = tmp_path / "copy"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("DVC_ROOT", str(real))
    assert repo_root(elsewhere / "sub") == real.resolve()
    monkeypatch.chdir(elsewhere)
    assert repo_root() == real.resolve()


def test_repo_root_finds_nearest_marker_without_dvc_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    project = tmp_path / "project"
    nested = project / "a" / "b"
    nested.mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    assert repo_root(nested) == project.resolve()
    monkeypatch.chdir(nested)
    assert repo_root() == project.resolve()
    assert repo_root(REPO / "src" / "rnnlab") == REPO
