"""The events/ fixtures are the real shapes: what the schedule sends, what each function receives. The same
files serve `sam local invoke -e` and `sam remote invoke --event-file` (commands in docs/operating.md)."""

import json
import re

import boto3

from emulator import account, stack
from emulator.runner import Emulator

EVENTS = stack.ROOT / "events"
OPERATING = (stack.ROOT / "docs" / "operating.md").read_text()  # starting a run, invoking a function


def load(name):
    return json.loads((EVENTS / name).read_text())


def test_the_scheduled_event_becomes_the_scheduled_run_input_through_the_rules_transformer():
    resources, resolver = stack.resolve()
    (rule,) = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    (target,) = resolver.resolve(rule["Properties"])["Targets"]
    execution_input = json.loads(stack.transform_input(target["InputTransformer"], load("scheduled-event.json")))
    assert execution_input == load("scheduled-run.json")


def test_every_fixture_is_documented_in_the_operating_page():
    undocumented = [p.name for p in EVENTS.glob("*.json") if f"events/{p.name}" not in OPERATING]
    assert undocumented == [], "add a command using each to docs/operating.md"


def test_the_operating_page_invokes_each_function_locally_and_remotely():
    for function in ("PlanRunFunction", "PlanBatchFunction", "KeyCheckFunction"):
        assert re.search(rf"sam local invoke {function} -e events/\S+\.json", OPERATING), function
        assert re.search(rf"sam remote invoke {function} --stack-name \S+ --event-file events/\S+\.json", OPERATING), function


def test_the_key_check_fixture_proves_a_stored_key_and_returns_no_secret():
    fixture = {
        "start": "2026-01-05T06:00:00Z",
        "users": [{"name": "ci-deployer", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 10, "inSecret": True}]}],
    }
    with Emulator(fixture) as aws:
        (key_id,) = [k.id for k in account.keys_of("ci-deployer")]
        event = {**load("key-check.json"), "keyId": key_id}  # the fixture's id is AWS's documentation example
        payload, error = aws.invoke("KeyCheckFunction", event)
        assert error is None, payload
        assert payload == {"user": "ci-deployer", "keyId": key_id, "authenticatesAs": "arn:aws:iam::123456789012:user/ci-deployer"}
        assert not any(secret in json.dumps(payload) for secret in aws.issued_secrets | _seeded_secrets())


def _seeded_secrets():
    value = boto3.client("secretsmanager").get_secret_value(SecretId="iam-key-rotation/ci-deployer")["SecretString"]
    return {json.loads(value)["SecretAccessKey"]}
