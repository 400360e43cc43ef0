"""The library's layers: base (validation, digests) < engine < defences < instruments < run.
A module imports only from its own layer or lower ones, so the engine never depends on an
instrument or on the runner, and a defence never on what measures it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "gravity"
LAYERS = {"validation": 0, "digests": 0, "engine": 1, "defences": 2, "instruments": 3, "run": 4}


def layer_of(dotted: str) -> int | None:
    """The layer of a module `gravity.X...` (None for the package root)."""
    parts = dotted.split(".")
    if parts[0] != "gravity" or len(parts) == 1:
        return None
    return LAYERS[parts[1]]


def imports(path: Path) -> set[str]:
    """Every gravity module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("gravity")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gravity":
                found |= {f"gravity.{a.name}" for a in node.names}
            elif node.module.startswith("gravity."):
                found.add(node.module)
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT or p.name != "__init__.py")


def test_every_module_belongs_to_a_layer():
    for path in MODULES:
        top = path.relative_to(ROOT).parts[0].removesuffix(".py")
        assert top in LAYERS, f"gravity/{path.relative_to(ROOT)} is in no layer ({LAYERS})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_higher_layer(path):
    own = LAYERS[path.relative_to(ROOT).parts[0].removesuffix(".py")]
    higher = sorted(m for m in imports(path) if (layer_of(m) or 0) > own)
    assert not higher, f"gravity/{path.relative_to(ROOT)} (layer {own}) imports {higher}"
