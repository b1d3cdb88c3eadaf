"""The downward API labels file the injected sidecar reads for tier rules on the calling pod."""

from __future__ import annotations

from pilotfish.modes import podinfo


def test_the_kubelets_quoted_lines_become_labels():
    text = 'app="web"\nteam="research"\nquote="say \\"hi\\""\n'
    assert podinfo.parse_labels(text) == {"app": "web", "team": "research", "quote": 'say "hi"'}


def test_malformed_lines_are_skipped_not_fatal():
    assert podinfo.parse_labels('ok="1"\nnot a label\nbare=unquoted\n=""\nnum=3\n') == {"ok": "1"}


def test_a_missing_file_means_no_labels(tmp_path):
    assert podinfo.read_labels(str(tmp_path / "absent")) == {}
    assert podinfo.read_labels(None) == {}


def test_an_oversized_file_is_refused_whole(tmp_path):
    big = tmp_path / "labels"
    big.write_text('a="b"\n' * (podinfo.MAX_BYTES // 6 + 1))
    assert podinfo.read_labels(str(big)) == {}
