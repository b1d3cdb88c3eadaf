"""The routes document's bytes are a contract between versions: during a rollout an older sidecar reads
a newer operator's document and the other way round, and the digest tells the operator which document
each sidecar serves. data/routes_on_main.json is what the pydantic document on main (f6bfb2f) rendered
from data/every_field.yaml, every field set; the msgspec document must write the same bytes, read them
back whole, and refuse what the pydantic one refused, naming the field."""

from __future__ import annotations

import copy
import hashlib
import pathlib

import orjson
import pytest

from pilotfish.api import manifests
from pilotfish.routes import document, loader, render

DATA = pathlib.Path(__file__).parent / "data"
ON_MAIN = (DATA / "routes_on_main.json").read_bytes()
DIGEST_ON_MAIN = "7a1bc5a45ac4c184"
EMPTY_DIGEST_ON_MAIN = "71fd087db446371b"  # RoutesDocument() on main: a sidecar whose ConfigMap is absent


def rendered() -> document.RoutesDocument:
    parsed = manifests.load_paths([DATA / "every_field.yaml"], namespace="team-a")
    assert not parsed.errors
    result = render.render(
        namespace="team-a",
        classes=parsed.classes,
        credentials=parsed.credentials,
        secrets_present={secret.name: set(secret.data) for secret in parsed.secrets},
        canary_weights={"workhorse": 15},
        budgets=parsed.budgets,
    )
    assert not result.problems()
    return result.document


def test_the_operator_writes_the_same_bytes_and_digest_as_the_pydantic_document_did():
    routes = rendered()
    assert routes.to_json() == ON_MAIN
    assert routes.digest() == DIGEST_ON_MAIN == hashlib.sha256(ON_MAIN).hexdigest()[:16]


def test_a_sidecar_reads_an_older_operators_document_whole_and_reports_its_digest():
    routes = document.RoutesDocument.from_json(ON_MAIN)
    assert routes == rendered()
    assert routes.to_json() == ON_MAIN and routes.digest() == DIGEST_ON_MAIN


def test_the_empty_document_is_the_same_bytes_as_before():
    assert document.RoutesDocument().digest() == EMPTY_DIGEST_ON_MAIN


def broken(path: tuple[str | int, ...], value: object) -> bytes:
    wire = copy.deepcopy(orjson.loads(ON_MAIN))
    at = wire
    for step in path[:-1]:
        at = at[step]
    at[path[-1]] = value
    return orjson.dumps(wire)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            ("classes", "workhorse", "members", 0, "rpm"),
            0,
            r"classes\.workhorse\.members\[0\]\.rpm: Expected `int` >= 1",
        ),
        (
            ("classes", "workhorse", "canary", "weight"),
            101,
            r"classes\.workhorse\.canary\.weight: Expected `int` <= 100",
        ),
        (("classes", "workhorse", "routing", "maxAttempts"), 11, r"classes\.workhorse\.routing\.maxAttempts:"),
        (
            ("classes", "workhorse", "routing", "strategy"),
            "fastest",
            r"classes\.workhorse\.routing\.strategy: Invalid enum",
        ),
        (
            ("classes", "workhorse", "timeouts", "totalSeconds"),
            5,
            r"classes\.workhorse\.timeouts: firstTokenSeconds \(9\) exceeds totalSeconds \(5\)",
        ),
        (
            ("classes", "workhorse", "members", 2, "baseURL"),
            "http://claude.internal",
            r"classes\.workhorse\.members\[2\]: member claude/claude-3-5-haiku: baseURL would send the API key in plain text",
        ),
        (
            ("classes", "workhorse", "members", 0, "apiKeyRef", "name"),
            "Keys!",
            r"classes\.workhorse\.members\[0\]\.apiKeyRef\.name: Expected `str` matching regex",
        ),
        (
            ("classes", "assistant", "tiers", "rules", 1, "when"),
            {},
            r"classes\.assistant\.tiers\.rules\[1\]\.when: set at least one condition",
        ),
        (
            ("budgets", "team", "downgradeTo"),
            "workhorse",
            r"budgets\.team: downgradeTo 'workhorse' is one of the classes",
        ),
        (("budgets", "floor", "spend", "period"), "week", r"budgets\.floor\.spend\.period: Invalid enum value 'week'"),
        (
            ("classes", "cheap", "limits", "maxChatResponseBytes"),
            1024,
            r"classes\.cheap\.limits\.maxChatResponseBytes: Expected `int` >= 65536",
        ),
        (("classes", "cheap", "hedge"), True, r"classes\.cheap: Object contains unknown field `hedge`"),
        (("schemaVersion",), 2, r"schemaVersion: Invalid enum value 2"),
    ],
)
def test_a_broken_document_is_refused_naming_the_field(path, value, message):
    with pytest.raises(document.DocumentError, match=message):
        document.RoutesDocument.from_json(broken(path, value))


def test_the_loader_keeps_the_field_in_its_error(tmp_path):
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / document.DOCUMENT_KEY).write_bytes(broken(("classes", "cheap", "members", 0, "weight"), "3"))
    routes = loader.RoutesLoader(config_dir=tmp_path / "routes", secrets_dir=tmp_path / "secrets")
    with pytest.raises(
        loader.LoadError,
        match=r"not a routes document this sidecar understands: classes\.cheap\.members\[0\]\.weight: Expected `int`, got `str`",
    ):
        routes.load()


def test_render_refuses_a_document_the_sidecars_would_refuse():
    """msgspec checks bounds only when it decodes; render reads its document back as a sidecar would."""
    parsed = manifests.load_paths([DATA / "every_field.yaml"], namespace="team-a")
    with pytest.raises(document.DocumentError, match=r"classes\.workhorse\.canary\.weight: Expected `int` <= 100"):
        render.render(
            namespace="team-a",
            classes=parsed.classes,
            credentials=parsed.credentials,
            canary_weights={"workhorse": 101},
        )
