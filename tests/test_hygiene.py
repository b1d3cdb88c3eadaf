"""Tests wait on events, never on the clock: a lint over tests/ for the two ways a test ends up timing-bound.

1. A ``sleep`` that is not the pause of a polling or pacing loop is a guess at how long something takes, and
   on a busy machine it is wrong. It is allowed only with a comment on its line that starts
   ``# not an event:`` and says why no condition can be polled instead.
2. An ``assert`` that reads a clock (``time.monotonic()``, ``time.perf_counter()``, ``time.time()``,
   ``loop.time()``) asserts speed, and speed belongs to benchmarks/; inside a polling loop such an assert
   is the loop's give-up bound (a generous timeout), which is allowed.

docs/testing.md states the rule; this test is how a reviewer checks it.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
CLOCKS = {"monotonic", "perf_counter", "time"}  # time.time(), loop.time()
WAIVER = "# not an event:"
LOOPS = (ast.For, ast.AsyncFor, ast.While)


def _sources() -> list[pathlib.Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _called(node: ast.AST) -> str | None:
    """The name a call calls (``sleep`` for ``asyncio.sleep(…)`` and ``sleep(…)``)."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            return node.func.attr
        if isinstance(node.func, ast.Name):
            return node.func.id
    return None


def _in_loop(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside the body of a loop of the same function: a poll or a pace, not a one-off wait."""
    while (node := parents.get(node)) is not None:  # type: ignore[assignment]
        if isinstance(node, LOOPS):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
    return False


def bare_sleeps(source: str) -> list[int]:
    """Lines of sleeps outside any loop, without a waiver comment."""
    tree, lines = ast.parse(source), source.splitlines()
    parents = _parents(tree)
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _called(node) == "sleep"
        and not (node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0)  # a yield
        and not _in_loop(node, parents)
        and WAIVER not in lines[node.lineno - 1] + lines[node.lineno - 2]  # on its line or the one above
    ]


def clock_assertions(source: str) -> list[int]:
    """Lines of asserts outside any loop that read a clock (inside a polling loop, one is its give-up bound)."""
    tree = ast.parse(source)
    parents = _parents(tree)
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Assert)
        and not _in_loop(node, parents)
        and any(
            isinstance(inner, ast.Call) and _called(inner) in CLOCKS and not inner.args for inner in ast.walk(node.test)
        )
    ]


@pytest.mark.parametrize("path", _sources(), ids=lambda path: str(path.relative_to(TESTS)))
def test_no_test_sleeps_to_synchronise_or_asserts_on_the_clock(path: pathlib.Path) -> None:
    source = path.read_text()
    assert bare_sleeps(source) == [], f"sleeps without a '{WAIVER} …' comment (wait on a condition instead)"
    assert clock_assertions(source) == [], "asserts on wall-clock time (speed belongs to benchmarks/)"


def test_the_lint_catches_a_bare_sleep_and_a_clock_assertion_but_not_a_poll() -> None:
    assert bare_sleeps("import asyncio\nasync def t():\n    await asyncio.sleep(0.2)\n") == [3]
    assert bare_sleeps("import time\ndef t():\n    time.sleep(1)  # not an event: the kernel's reaper runs\n") == []
    polling = "import asyncio\nasync def t(ok):\n    while not ok():\n        await asyncio.sleep(0.05)\n"
    assert bare_sleeps(polling) == []
    assert bare_sleeps("import asyncio\nasync def t():\n    await asyncio.sleep(0)\n") == []  # a yield, not a wait
    in_a_helper = "def t():\n    while True:\n        def later():\n            sleep(1)\n"
    assert bare_sleeps(in_a_helper) == [4]  # a loop around the definition is not a loop around the sleep
    timed = "import time\ndef t(started):\n    assert time.monotonic() - started < 15\n"
    assert clock_assertions(timed) == [3]
    assert clock_assertions("def t(record):\n    assert record.time() == 3\n") == [2]
    assert clock_assertions("def t(line):\n    assert line['latency_ms'] > 0\n") == []
    give_up = "import time\ndef t(gone, end):\n    while not gone():\n        assert time.monotonic() < end\n"
    assert clock_assertions(give_up) == []  # a poll's timeout, not a speed claim
