"""Repeated log lines are throttled per kind, and the next line let through says how many were dropped."""

import logging
import sys

from pilotfish.telemetry import throttle


def _record(msg: str, name: str = "asyncio") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_a_burst_of_one_kind_is_cut_and_the_next_window_reports_the_drop() -> None:
    clock = [0.0]
    gate = throttle.Throttle(burst=3, window=10, now=lambda: clock[0])
    passed = [gate.filter(_record("socket.accept() out of system resource")) for _ in range(1000)]
    assert passed.count(True) == 3
    clock[0] = 10.0
    later = _record("socket.accept() out of system resource")
    assert gate.filter(later)
    assert "[997 similar lines dropped in 10s]" in later.getMessage()


def test_other_kinds_are_not_held_back_by_a_flood() -> None:
    gate = throttle.Throttle(burst=2, window=10, now=lambda: 0.0)
    for _ in range(100):
        gate.filter(_record("flood"))
    assert gate.filter(_record("something else"))
    assert gate.filter(_record("flood", name="pilotfish.other"))


def test_only_the_first_record_of_a_kind_in_a_window_keeps_its_traceback() -> None:
    clock = [0.0]
    gate = throttle.Throttle(burst=3, window=10, now=lambda: clock[0])
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        failure = sys.exc_info()
    records = [_record("socket.accept() out of system resource") for _ in range(3)]
    for record in records:
        record.exc_info = failure
        assert gate.filter(record)
    assert [record.exc_info is not None for record in records] == [True, False, False]
    assert "Too many open files" in logging.Formatter().format(records[0])
    assert "Traceback" not in logging.Formatter().format(records[1])
    clock[0] = 10.0
    next_window = _record("socket.accept() out of system resource")
    next_window.exc_info = failure
    assert gate.filter(next_window) and next_window.exc_info is not None
