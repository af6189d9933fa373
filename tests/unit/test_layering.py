"""The direction of imports, read from the source: web/ stands on chatter/, which
stands on supervision/, and nothing points back up.

The process's entry point (`web.cli`) sits at the top of the graph, so no module
of chatter/ or supervision/ has a reason to import web/, not even lazily inside a
function; and supervision/ is a library of its own, with no chat in it. Every
``import``, ``from ... import`` (relative ones resolved) and
``importlib.import_module``/``__import__`` of a literal name is checked, wherever
it sits in the file. (`test_package_boundaries` checks the same of supervision/
at run time, by what importing it loads.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "chatter": {"web"},
    "supervision": {"chatter", "web"},
}
"""For each package, the top-level packages none of its modules may import."""


def _package_of(path: Path) -> str:
    """The dotted package a source file's relative imports start from."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts = parts[:-1]
    return ".".join(parts)


def _relative_base(package: str, level: int) -> str:
    parts = package.split(".")
    return ".".join(parts[: len(parts) - (level - 1)])


def imported_modules(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import in `source`, a module of `package`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module or ""
                continue
            base = _relative_base(package, node.level)
            if node.module:
                yield node.lineno, f"{base}.{node.module}"
            else:
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _violations(package: str) -> list[str]:
    found = []
    for path in _sources(package):
        for line, module in imported_modules(path.read_text(), _package_of(path)):
            if module.split(".")[0] in FORBIDDEN[package]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up(package: str) -> None:
    assert len(_sources(package)) > 5, f"no sources found under {package}/"
    assert _violations(package) == []


def test_the_entry_point_is_in_web_and_not_in_chatter() -> None:
    assert (ROOT / "web" / "cli.py").is_file()
    assert (ROOT / "web" / "__main__.py").is_file()
    assert not (ROOT / "chatter" / "cli.py").exists()
    assert not (ROOT / "chatter" / "__main__.py").exists()


def test_the_check_sees_imports_wherever_they_are() -> None:
    source = """
import os, web.server as server
from web import app
from chatter.config import Settings

def serve():
    from web.console import run_console
    import importlib
    importlib.import_module("web.pages")
    return __import__("web.api")

class Later:
    def method(self):
        from .. import web
        from ..web.socket import ChatSocket
        from . import tree
"""
    modules = {module for _, module in imported_modules(source, "chatter.sub")}
    assert modules == {
        "os",
        "web.server",
        "web",
        "chatter.config",
        "web.console",
        "importlib",
        "web.pages",
        "web.api",
        "chatter.web",
        "chatter.web.socket",
        "chatter.sub.tree",
    }
