"""The package's shape: imports point one way down the pipeline, with no circles.

Read from the source with ``ast``: every ``import`` counts, at module level or inside a
function, except those under ``if TYPE_CHECKING:`` (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "batchsms"

# What each part may import (besides itself): the pipeline's direction.
BASE = {"errors", "limits"}  # the exception root and the documented limits: for everyone
ALLOWED = {
    "errors": set(),
    "limits": {"errors"},
    "providers": BASE,
    "emulator": BASE | {"providers"},
    "plan": BASE | {"providers"},
    "send": BASE | {"providers", "plan"},
    "report": BASE | {"providers", "plan", "send"},
    "scaffold": BASE | {"plan", "providers"},
    "cli": BASE | {"providers", "plan", "send", "report", "scaffold", "emulator"},
    "__main__": {"cli"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, known: set[str]) -> Iterator[str]:
    """The batchsms modules ``path`` imports when it runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("batchsms"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in known else str(node.module)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("batchsms"))


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: set(imports(path, set(found))) - {name} for name, path in found.items()}


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "batchsms"


def test_each_part_imports_only_what_comes_before_it_in_the_pipeline():
    wrong = sorted(f"{module} imports {target}" for module, targets in graph().items()
                   for target in targets
                   if part(target) not in ALLOWED.get(part(module), set()) | {part(module)}
                   and part(module) != "batchsms" and target != "batchsms")
    assert wrong == []


def test_the_parts_form_no_circle():
    edges = {a: {b for b in allowed if b in ALLOWED} for a, allowed in ALLOWED.items()}
    seen: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " → ".join((*path, node))
        if node in seen:
            return
        for nxt in edges[node]:
            visit(nxt, (*path, node))
        seen.add(node)

    for node in edges:
        visit(node, ())
