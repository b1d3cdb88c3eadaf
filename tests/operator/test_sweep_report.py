"""What the operator takes from a sidecar's /readyz: the digest, and only known rejection reasons."""

from __future__ import annotations

from pilotfish_operator import sweep


def test_a_readyz_body_gives_the_digest_and_the_rejected_credentials():
    report = sweep._report({"digest": "abc", "rejectedCredentials": {"gemini": "invalid_key"}})
    assert report == sweep.SidecarReport("abc", {"gemini": "invalid_key"})


def test_a_reason_the_sidecar_cannot_have_meant_is_dropped_so_no_text_reaches_a_status():
    report = sweep._report({"digest": "abc", "rejectedCredentials": {"c": "sk-leaked-key-text", "d": 5}})
    assert report.rejected == {}


def test_a_body_that_is_not_an_object_is_an_unreachable_sidecar():
    assert sweep._report(["x"]) == sweep.SidecarReport(sweep.UNREACHABLE)


def test_a_readyz_body_gives_the_members_learned_unable_to_continue_by_class():
    body = {"digest": "abc", "cannotContinue": {"workhorse": {"gemini/gemini-2.5-pro": "prefill_rejected"}}}
    assert sweep._report(body).cannot_continue == {"workhorse": {"gemini/gemini-2.5-pro": "prefill_rejected"}}


def test_a_continuation_reason_the_sidecar_cannot_have_meant_or_a_malformed_entry_is_dropped():
    body = {
        "digest": "abc",
        "cannotContinue": {"c": {"a/m": "sk-leaked-key-text", "b/m": "restarted", "d/m": 5}, "e": ["x"], "f": 1},
    }
    assert sweep._report(body).cannot_continue == {"c": {"b/m": "restarted"}}
    assert sweep._report({"digest": "abc", "cannotContinue": "restarted"}).cannot_continue == {}


def test_what_the_sidecars_of_a_namespace_learned_is_merged_and_the_first_reason_read_wins():
    merged = sweep.merged_learned(
        [
            {"c": {"a/m": "restarted"}},
            {"c": {"a/m": "diverged", "b/m": "prefill_rejected"}, "d": {"x/m": "diverged"}},
            {},
        ]
    )
    assert merged == {"c": {"a/m": "restarted", "b/m": "prefill_rejected"}, "d": {"x/m": "diverged"}}
