"""docs/operators.md's alert rules: promtool accepts them and they fire as described, on metrics the server exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

DOC = Path(__file__).resolve().parent.parent / "docs" / "operators.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (`make system-deps` installs Debian's prometheus)"
)

# promtool's own unit test of the rules: synthetic series in, the alerts expected out.
RULE_TESTS = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'hermes_gateway_held_down{profile="crashy", reason="crash-loop"}'
        values: '0 0 1x10'
      - series: 'hermes_gateway_held_down{profile="alice", reason=""}'
        values: '0x12'
      - series: 'hermes_gateway_crashes_total{profile="crashy"}'
        values: '0+1x70'
      - series: 'hermes_gateway_crashes_total{profile="alice"}'
        values: '0x70'
      - series: 'hermes_state_store_ok{instance="host:9130"}'
        values: '1 1 0x10'
    alert_rule_test:
      - eval_time: 2m
        alertname: HermesGatewayHeldDown
        exp_alerts: []
      - eval_time: 5m
        alertname: HermesGatewayHeldDown
        exp_alerts:
          - exp_labels: {severity: page, profile: crashy, reason: crash-loop, alertname: HermesGatewayHeldDown}
            exp_annotations:
              summary: "gateway crashy is held down (crash-loop)"
              description: "The supervisor stopped restarting it. `hermes-state history crashy` shows why; `hermes-state start crashy` gives it a clean slate."
      - eval_time: 5m
        alertname: HermesStateStoreNotOk
        exp_alerts: []
      - eval_time: 8m
        alertname: HermesStateStoreNotOk
        exp_alerts:
          - exp_labels: {severity: page, instance: "host:9130", alertname: HermesStateStoreNotOk}
            exp_annotations:
              summary: "the hermes event store on host:9130 is unreadable or failed its quick_check"
              description: "Run `hermes-state doctor` in the container; hermes_state_store_readable says whether it can be read at all."
      - eval_time: 70m
        alertname: HermesGatewayCrashing
        exp_alerts:
          - exp_labels: {severity: warning, profile: crashy, alertname: HermesGatewayCrashing}
            exp_annotations:
              summary: "gateway crashy crashed 60 times in the last hour"
              description: "Not held down yet (the breaker counts crashes per start); see /profiles/crashy for its runs."
"""


def rules_text() -> str:
    blocks = re.findall(r"^### Alert rules\n.*?^```yaml\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)
    assert len(blocks) == 1, "docs/operators.md must hold one yaml block under '### Alert rules'"
    return blocks[0]


def test_three_rules_on_metrics_the_server_exports(migrated_home):
    rules = [rule for group in yaml.safe_load(rules_text())["groups"] for rule in group["rules"]]
    assert [rule["alert"] for rule in rules] == ["HermesGatewayHeldDown", "HermesGatewayCrashing", "HermesStateStoreNotOk"]
    migrated_home.hermes("create", "alice")
    scraped = migrated_home.hermes("serve", "--once", "/metrics")
    assert scraped.returncode == 0, scraped.stderr
    exported = {sample.name for family in text_string_to_metric_families(scraped.stdout) for sample in family.samples}
    for rule in rules:
        named = set(re.findall(r"\bhermes_[a-z_]+", rule["expr"]))
        assert named and named <= exported, (rule["alert"], named - exported)


@needs_promtool
def test_promtool_checks_the_rules_and_they_fire_as_described(tmp_path):
    (tmp_path / "rules.yml").write_text(rules_text())
    (tmp_path / "rules_test.yml").write_text(RULE_TESTS)
    checked = subprocess.run([PROMTOOL, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout
    tested = subprocess.run([PROMTOOL, "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
