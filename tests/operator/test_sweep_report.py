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
