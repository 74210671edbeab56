"""dvc.yaml says exactly what each stage runs: every rnnlab module it can import, and the params
it reads; and conf/ names every schema key, so params.yaml (and DVC) tracks all of them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml

from rnnlab import config
from rnnlab.tasks import TASK_SPECS

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# Run in a fresh interpreter: import the roots, then every rnnlab import statement of every
# rnnlab module loaded so far (including those inside functions, which run only on some paths,
# and names a package loads lazily on attribute access), until nothing new loads.
CLOSURE = r"""
import ast, importlib, importlib.util, json, sys

def statements(path):
    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # never runs
            if isinstance(child, ast.Import):
                yield from ((alias.name, ()) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module, tuple(alias.name for alias in child.names)
            yield from visit(child)
    with open(path, encoding="utf-8") as f:
        yield from visit(ast.parse(f.read()))

def load(module, names):
    loaded = importlib.import_module(module)
    for name in names:
        if importlib.util.find_spec(f"{module}.{name}") if hasattr(loaded, "__path__") else None:
            importlib.import_module(f"{module}.{name}")
        else:
            getattr(loaded, name)  # a lazily loaded attribute imports its home module

done = set()
for root in sys.argv[1:]:
    importlib.import_module(root)
while new := [m for m in list(sys.modules) if m.split(".")[0] == "rnnlab" and m not in done]:
    for name in new:
        done.add(name)
        for module, names in statements(sys.modules[name].__file__):
            if module.split(".")[0] == "rnnlab":
                load(module, names)
print(json.dumps(sorted(sys.modules[m].__file__ for m in done)))
"""


def import_closure(*roots: str) -> set[str]:
    """Repository-relative files of every rnnlab module that importing ``roots`` can load."""
    done = subprocess.run(
        [sys.executable, "-c", CLOSURE, *roots],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    return {str(Path(f).relative_to(REPO)) for f in json.loads(done.stdout)}


def _stage_roots(stage: str) -> list[str]:
    """The stage's module plus the modules the task specs name for it (imported by path)."""
    named = (
        [s.preparer for s in TASK_SPECS.values()]
        if stage == "prepare"
        else [s.task_class.split(":")[0] for s in TASK_SPECS.values()]
    )
    return [f"rnnlab.stages.{stage}", "rnnlab.cli", *named]


def _minimal_deps(closure: set[str]) -> set[str]:
    """The closure as dvc.yaml should list it: a directory whose modules are all used, else
    the files; empty files (package markers) are left out, DVC warns about them."""
    listed = {f for f in closure if (REPO / f).stat().st_size}
    for init in sorted((f for f in closure if f.endswith("/__init__.py")), key=len, reverse=True):
        package = Path(init).parent
        members = {
            str(p.relative_to(REPO)) for p in (REPO / package).rglob("*.py") if p.stat().st_size
        }
        if members <= listed:
            listed = (listed - members) | {str(package)}
    return listed


DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.slow  # three fresh interpreters importing torch, Lightning and MLflow
@pytest.mark.parametrize("stage", ["prepare", "train", "evaluate"])
def test_each_stage_depends_on_every_module_it_imports(stage: str) -> None:
    closure = import_closure(*_stage_roots(stage))
    expected = _minimal_deps(closure)
    code_deps = {d for d in DVC[stage]["deps"] if d.startswith("src/")}
    assert code_deps == expected, (
        f"dvc.yaml stage {stage!r}: missing {sorted(expected - code_deps)}, "
        f"not imported (or a directory only partly used) {sorted(code_deps - expected)}"
    )


def _missing(node: dict, schema: type, prefix: str) -> list[str]:
    missing = []
    for f in fields(schema):
        default = f.default_factory() if callable(f.default_factory) else None
        if f.name not in node:
            missing.append(f"{prefix}.{f.name}")
        elif is_dataclass(default):
            missing += _missing(node[f.name], type(default), f"{prefix}.{f.name}")
    return missing


def test_conf_names_every_schema_key_so_dvc_tracks_it() -> None:
    """A key the schema fills in silently would be missing from params.yaml: DVC could not see
    `dvc exp run -S` change it."""
    models = [p.stem for p in (REPO / "conf/model").glob("*.yaml")]
    combos = [
        [f"task={name}", f"data={data}", f"model={model}"]
        for name in TASK_SPECS
        for data in config.data_configs_for(name)
        for model in models[:1] + models[1:] * (name == "forecast" and data == "co2")
    ]
    missing = set()
    for overrides in combos:
        cfg = config.compose(overrides)
        spec = TASK_SPECS[cfg.task.name]
        for section, schema in (
            ("task", spec.task_schema),
            ("data", spec.data_schema),
            ("evaluate", spec.evaluate_schema),
            ("model", config.ModelConfig),
            ("trainer", config.TrainerConfig),
            ("logger", config.LoggerConfig),
        ):
            where = " ".join(overrides)
            missing |= {f"{k} ({where})" for k in _missing(cfg[section], schema, section)}
    assert not missing, sorted(missing)
