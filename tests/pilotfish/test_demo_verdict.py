"""The demo's verdict judges only requests that started and finished in one phase."""

import collections

from pilotfish import demo


def _tally(order: list[str], shown: dict[str, int] | None = None) -> demo.Tally:
    tally = demo.Tally()
    tally.order = list(order)
    tally.served = collections.Counter(shown if shown is not None else collections.Counter(order))
    tally.latencies = [0.001] * max(1, len(order))
    return tally


def _healthy_run() -> list[demo.Tally]:
    return [_tally([phase.settles_on] * 8) for phase in demo.PHASES]


def test_a_clean_run_passes():
    assert demo._verdict(_healthy_run()) == 0


def test_a_request_that_straddles_a_fault_change_is_shown_but_not_judged():
    tallies = _healthy_run()
    # accepted by Anthropic while healthy, finished once the 529 phase had begun
    tallies[1].served["anthropic"] += 1
    assert demo._verdict(tallies) == 0


def test_a_broken_vendor_serving_a_request_started_in_its_outage_fails_the_demo(capsys):
    tallies = _healthy_run()
    tallies[1].order.insert(0, "anthropic")
    assert demo._verdict(tallies) == 1
    assert "broken anthropic served 1 requests" in capsys.readouterr().out


def test_traffic_that_never_settles_fails_the_demo(capsys):
    tallies = _healthy_run()
    tallies[-1].order = ["openai"] * 8
    assert demo._verdict(tallies) == 1
    assert "did not settle on anthropic" in capsys.readouterr().out


def test_a_failed_request_fails_the_demo():
    tallies = _healthy_run()
    tallies[2].errors = 1
    assert demo._verdict(tallies) == 1
