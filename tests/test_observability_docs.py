"""docs/observability.md lists every metric, label and log field the code produces, and nothing else."""

from __future__ import annotations

import pathlib
import re

import prometheus_client

from pilotfish.telemetry import logs, metrics, records, tracing
from pilotfish_operator import metrics as operator_metrics

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "observability.md"
SUFFIX = {"counter": "_total", "gauge": "", "histogram": ""}


def _documented_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    found = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| `(pilotfish_[a-z_]+)` \| (\w+) \|\s*([^|]*?)\s*\|", line)
        if match:
            labels = tuple(part.strip() for part in match.group(3).split(",") if part.strip())
            found[match.group(1)] = (match.group(2), labels)
    return found


def _exported_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    collectors = list(vars(metrics.Metrics(prometheus_client.CollectorRegistry())).values())
    collectors += list(vars(operator_metrics).values())
    return {
        c._name + SUFFIX[c._type]: (c._type, tuple(c._labelnames))
        for c in collectors
        if isinstance(c, prometheus_client.metrics.MetricWrapperBase)
    }


def test_every_exported_metric_is_documented_with_its_type_and_labels():
    assert _documented_metrics() == _exported_metrics()


def test_every_request_log_field_is_documented():
    section = DOC.read_text().split("## Request log")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    fields = list(logs.request_fields(records.RequestRecord(class_name="c", stream=False)))
    assert documented == fields


def test_every_span_attribute_is_documented():
    source = (DOC.parents[1] / "sidecar" / "pilotfish" / "telemetry" / "tracing.py").read_text()
    in_code = set(re.findall(r'"((?:gen_ai|pilotfish|error|http|server)\.[a-z_.]+)"', source)) - {tracing.TRACER_NAME}
    section = DOC.read_text().split("## Traces")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.MULTILINE))
    assert documented == in_code
