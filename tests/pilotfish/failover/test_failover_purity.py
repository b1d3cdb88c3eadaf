"""The decision modules stay pure and small: the house rules, checked rather than hoped for."""

import ast
import importlib
import pathlib

import pytest

from pilotfish import failover

PURE_MODULES = ("breaker", "budget", "deadlines", "health", "pinning", "plan", "policy", "tiers")
FORBIDDEN_IMPORTS = {"aiohttp", "asyncio", "os", "socket", "threading", "time", "urllib", "http", "subprocess"}
TYPING_ONLY = {"__future__", "collections.abc", "typing"}  # names from these are fine to import


def _tree(name):
    path = pathlib.Path(failover.__file__).parent / f"{name}.py"
    return path, ast.parse(path.read_text())


@pytest.mark.parametrize("name", PURE_MODULES)
def test_a_decision_module_imports_nothing_that_does_io_or_waits(name):
    _, tree = _tree(name)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN_IMPORTS


@pytest.mark.parametrize("name", PURE_MODULES)
def test_a_decision_module_imports_modules_not_names(name):
    _, tree = _tree(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module not in TYPING_ONLY:
            for alias in node.names:
                importlib.import_module(f"{node.module}.{alias.name}")  # raises if it is not a module


@pytest.mark.parametrize("name", PURE_MODULES)
def test_a_decision_module_keeps_no_global_state(name):
    _, tree = _tree(name)
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Global | ast.Nonlocal)]


@pytest.mark.parametrize("name", PURE_MODULES)
def test_a_decision_module_is_a_small_room_with_a_signpost(name):
    path, tree = _tree(name)
    assert len(path.read_text().splitlines()) <= 400
    assert ast.get_docstring(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno - node.lineno + 1 <= 40, f"{name}.{node.name} is longer than 40 lines"
