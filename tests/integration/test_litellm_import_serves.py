"""A LiteLLM config, imported with `pilotfish import litellm`, serves in `pilotfish local` unchanged.

The config is the issue's workhorse (three vendors under one model_name) pointed at the mock
providers through ``api_base``, keys named ``os.environ/...`` as LiteLLM users write them.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from tests.integration.conftest import KEYS, ROOT, answer_of, complete, start_sidecar, stop_sidecar

CONFIG = """\
model_list:
  - model_name: workhorse
    litellm_params: {{model: anthropic/claude-sonnet-4-6, api_base: "{claude}", api_key: os.environ/CLAUDE_KEY}}
  - model_name: workhorse
    litellm_params: {{model: openai/gpt-5-mini, api_base: "{primary}", api_key: os.environ/OPENAI_KEY}}
  - model_name: workhorse
    litellm_params: {{model: gemini/gemini-2.5-flash, api_base: "{gemini}", api_key: os.environ/GEMINI_KEY}}
router_settings:
  routing_strategy: usage-based-routing
  num_retries: 2
  fallbacks: [{{workhorse: [workhorse]}}]
  cooldown_time: 60
"""
ENV = {"CLAUDE_KEY": KEYS["claude"], "OPENAI_KEY": KEYS["primary"], "GEMINI_KEY": KEYS["gemini"]}
VENDORS = ("claude", "primary", "gemini")
MODELS = {"claude": "claude-sonnet-4-6", "primary": "gpt-5-mini", "gemini": "gemini-2.5-flash"}


async def import_litellm(config_path, out_path) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pilotfish.cli",
        "import",
        "litellm",
        str(config_path),
        "-o",
        str(out_path),
        "--secrets-from-env",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "sidecar"), **ENV},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


@pytest.fixture
async def imported_sidecar(tmp_path, mocks):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(**{name: mocks[name].url for name in VENDORS}))
    (tmp_path / "manifests").mkdir()
    warnings = await import_litellm(config, tmp_path / "manifests" / "imported.yaml")
    assert "usage-based-routing" in warnings
    sidecar = await start_sidecar(["local", "-f", str(tmp_path / "manifests")])
    yield sidecar
    await stop_sidecar(sidecar)


@pytest.mark.parametrize("survivor", VENDORS)
async def test_the_imported_class_fails_over_to_whichever_vendor_is_up(imported_sidecar, mocks, survivor):
    for name in VENDORS:
        if name != survivor:
            mocks[name].set_fault(mode="status", status=503)
    text, headers = await complete(imported_sidecar.client(), stream=False)
    assert text == answer_of(survivor)  # answered with the survivor's key from the imported Secret
    assert headers["x-pilotfish-model"] == MODELS[survivor]


async def test_the_imported_class_streams_to_the_openai_sdk(imported_sidecar):
    text, headers = await complete(imported_sidecar.client(), stream=True)
    assert text in {answer_of(name) for name in VENDORS}
    assert headers["x-pilotfish-class"] == "workhorse"
