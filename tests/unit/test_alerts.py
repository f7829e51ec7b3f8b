"""The Prometheus alert rules shipped with compose.yaml: they use only metrics the code
registers, Prometheus accepts them, and they fire (and stay quiet) as promtool's unit tests
say (tests/unit/alerts_test.yml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from c2c.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "observability" / "config" / "alerts.yml"


def _promtool() -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: `make tools` (Debian's prometheus package)"
    return promtool


def _registered() -> set[str]:
    names = set()
    for spec in METRICS:
        names.add(spec.prometheus_name)
        if spec.kind == "histogram":
            names |= {f"{spec.prometheus_name}_{s}" for s in ("bucket", "sum", "count")}
    return names


def test_every_metric_an_alert_uses_is_one_the_code_registers() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "C2CServiceDown",
        "C2CConsumerLagHigh",
        "C2CConsumerStalled",
        "C2CDeadLetters",
    }
    for rule in rules:
        used = set(re.findall(r"\bc2c_[a-z_]+", rule["expr"]))
        assert used <= _registered(), f"{rule['alert']} uses unknown {used - _registered()}"


def test_compose_ships_the_rules_to_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./observability/config/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    config = yaml.safe_load((ROOT / "observability" / "config" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
