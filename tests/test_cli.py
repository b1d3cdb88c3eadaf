"""The `pilotfish` command as users run it: subprocesses, exit codes, what lands on stdout and stderr."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.request

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def pilotfish(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "sidecar")}
    return subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_render_prints_the_routes_document_without_key_values():
    result = pilotfish("render", "-f", "examples/demo", "-n", "team-a")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schemaVersion"] == 1 and document["namespace"] == "team-a"
    assert [m["id"] for m in document["classes"]["workhorse"]["members"]] == [
        "anthropic/claude-sonnet-4-5",
        "openai/gpt-5-mini",
        "gemini/gemini-2.5-pro",
    ]
    assert not any(key in result.stdout for key in ("sk-ant-demo", "sk-demo-openai", "demo-gemini-key"))


def test_render_reports_every_error_with_file_object_and_field(tmp_path):
    broken = (ROOT / "examples/demo/workhorse.yaml").read_text().replace("model: claude-sonnet-4-5", "model: ''")
    (tmp_path / "broken.yaml").write_text(broken.replace("provider: anthropic\n", "provider: antropic\n"))
    result = pilotfish("render", "-f", str(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any('(document 2) ProviderCredential "anthropic": spec.provider: Input should be' in line for line in lines)
    assert any(
        '(document 5) ModelClass "workhorse": spec.members[0].model: String should have at least 1 character' in line
        for line in lines
    )


def test_render_warns_about_excluded_members_and_still_renders(tmp_path):
    text = (ROOT / "examples/demo/workhorse.yaml").read_text().replace("key: openai}", "key: nope}")
    (tmp_path / "w.yaml").write_text(text)
    result = pilotfish("render", "-f", str(tmp_path))
    assert result.returncode == 0
    assert 'member openai/gpt-5-mini excluded (SecretKeyMissing): Secret "demo-keys" has no key "nope"' in result.stderr
    assert [m["id"] for m in json.loads(result.stdout)["classes"]["workhorse"]["members"]] == [
        "anthropic/claude-sonnet-4-5",
        "gemini/gemini-2.5-pro",
    ]


def test_crds_check_passes_on_the_committed_files():
    assert pilotfish("crds", "--check").returncode == 0


def test_the_operator_refuses_a_webhook_certificate_without_its_key():
    result = pilotfish("operator", "--webhook-cert", "tls.crt")
    assert result.returncode == 2 and "--webhook-cert and --webhook-key go together" in result.stderr


def test_the_operator_names_a_broken_injector_config(tmp_path):
    config = tmp_path / "injector.yaml"
    config.write_text("image: x\nlistenPort: seventy\n")
    result = pilotfish("operator", "--injector-config", str(config))
    assert result.returncode == 2 and "listenPort" in result.stderr


def test_mock_provider_switches_faults_at_run_time_over_http():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "sidecar")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pilotfish.cli", "mock-provider", "--listen", f"127.0.0.1:{port}", "--name", "cli"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert '"msg":"listening"' in process.stderr.readline()
        base = f"http://127.0.0.1:{port}"
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        ok = json.load(urllib.request.urlopen(urllib.request.Request(f"{base}/v1/chat/completions", data=body)))
        assert ok["choices"][0]["message"]["content"].startswith("Hello from cli.")
        put = urllib.request.Request(f"{base}/_mock/fault", data=b'{"mode": "status", "status": 503}', method="PUT")
        assert json.load(urllib.request.urlopen(put))["mode"] == "status"
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(urllib.request.Request(f"{base}/v1/chat/completions", data=body))
        assert caught.value.code == 503
        assert json.load(caught.value)["error"]["code"] == "overloaded"
        bad = urllib.request.Request(f"{base}/_mock/fault", data=b'{"mode": "explode"}', method="PUT")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad)
        assert refused.value.code == 400
        stats = json.load(urllib.request.urlopen(f"{base}/_mock/stats"))
        assert stats["requests"] == 2 and stats["byMode"] == {"ok": 1, "status": 1}
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
def test_the_demo_runs_an_outage_and_a_recovery_without_a_failed_request():
    result = pilotfish("demo", "--no-live", timeout=150)  # the default 5 s phases: cooldowns are 2 s
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No request failed" in result.stdout
    assert "failovers by reason: circuit_open" in result.stdout  # the summary from the sidecar's request log
    png = pathlib.Path(result.stdout.split("Plot of requests per member over time: ")[1].split()[0])
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (
        "Anthropic overloaded: HTTP 529" in result.stdout
        and "...and OpenAI resets connections" in result.stdout
        and "errors=0" in result.stdout
    )
    # a cheap and a frontier tier, and a team budget downgrading, then refusing
    assert "a plain question                     -> cheap     (default)" in result.stdout
    assert "a request with tools                 -> frontier  (rules[1])" in result.stdout
    assert "for frontier -> cheap     (downgraded: budget frontier-spend spent)" in result.stdout
    assert re.search(r"for frontier -> 429 budget_exceeded, Retry-After \d+s \(budget cheap-rate\)", result.stdout)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_local_mode_keeps_its_admin_port_on_the_loopback_and_the_pod_sidecar_does_not():
    from pilotfish import cli

    assert cli._parser().parse_args(["local", "-f", "x"]).admin == "127.0.0.1:4001"
    assert cli._parser().parse_args(["sidecar", "--config-dir", "c", "--secrets-dir", "s"]).admin == "0.0.0.0:4001"


WORKHORSE = "tests/pilotfish/importers/fixtures/workhorse.yaml"


def test_import_litellm_prints_manifests_on_stdout_and_warnings_on_stderr():
    result = pilotfish("import", "litellm", WORKHORSE)
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout)]
    assert kinds == ["Secret", "ProviderCredential", "ProviderCredential", "ProviderCredential", "ModelClass"]
    assert "warning: router_settings.routing_strategy (usage-based-routing): " in result.stderr


def test_import_litellm_writes_a_file_only_its_owner_can_read_with_keys_from_the_environment(tmp_path):
    out = tmp_path / "manifests.yaml"
    env_key = "sk-ant-from-env-3f1a"
    result = subprocess.run(
        [sys.executable, "-m", "pilotfish.cli", "import", "litellm", WORKHORSE, "-o", str(out), "--secrets-from-env"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "sidecar"), "ANTHROPIC_API_KEY": env_key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and env_key not in result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    secret = next(yaml.safe_load_all(out.read_text()))
    assert secret["stringData"]["ANTHROPIC_API_KEY"] == env_key


def test_import_litellm_fails_with_the_reason_for_a_config_it_cannot_read(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("model_list: [{model_name: a, litellm_params: {model: bedrock/claude}}]\n")
    result = pilotfish("import", "litellm", str(bad))
    assert result.returncode == 1 and result.stdout == ""
    assert f"error: {bad}: no model group could be converted" in result.stderr and "bedrock" in result.stderr
