"""Deploying and operating the stack: the template lints clean, the ASL's substitutions match the template and it
hard-codes no account, region or partition, the parameters keep their names, defaults and descriptions, and
failed runs raise the alarm while every log group keeps the retention asked for.

None of these needs the ``asl`` or ``cfn`` fixtures of tests/test_template.py (the state machine definition and
the translated template), whose constants these tests share.
"""

import re
import sys
from pathlib import Path

import pytest
import tool_cache
from samtranslator.yaml_helper import yaml_parse

from emulator import stack
from test_template import ASL_TEXT, HANDLERS, PLACEHOLDER, ROOT

SAM = yaml_parse((ROOT / "template.yaml").read_text())
SUBSTITUTIONS = SAM["Resources"]["RotationStateMachine"]["Properties"]["DefinitionSubstitutions"]


# --- 1. linters ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [str(Path(sys.executable).with_name("cfn-lint")), "template.yaml"],
        [sys.executable, "-m", "samcli", "validate", "--lint", "--template", "template.yaml", "--region", "us-east-1"],
    ],
    ids=["cfn-lint", "sam-validate-lint"],
)
def test_template_passes_linter(command):
    # A clean verdict on the same template, referenced files, tool versions and command is reused (tests/tool_cache.py).
    result = tool_cache.run(command, inputs=tool_cache.referenced_paths(ROOT / "template.yaml"), cwd=ROOT, timeout=180,
                            env_prefixes=("AWS_", "SAM_", "CFN"))
    assert result.returncode == 0, f"{' '.join(command[:3])} exited {result.returncode}:\n{result.stdout}{result.stderr}"


# --- 2. the ASL's substitutions and portability --------------------------------------------------------------


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used():
    used = set(PLACEHOLDER.findall(ASL_TEXT))
    assert used - set(SUBSTITUTIONS) == set(), "placeholders without a DefinitionSubstitutions entry"
    assert set(SUBSTITUTIONS) - used == set(), "DefinitionSubstitutions entries the ASL never uses"


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(r"(?<!\d)\d{12}(?!\d)", id="account-id"),
        pytest.param(r"\b(?:us-gov|us-iso[a-z]?|[a-z]{2})-(?:[a-z]+-)+\d\b", id="region"),
        pytest.param(r"arn:aws[a-z-]*:", id="partition"),
    ],
)
def test_asl_hard_codes_no_account_region_or_partition(pattern):
    assert re.findall(pattern, ASL_TEXT) == []


# --- 3. parameter contract -----------------------------------------------------------------------------------

CONTRACT = {
    "MaxKeyAgeDays": 90,
    "InstallWindowDays": 7,
    "RecoveryWindowDays": 7,
    "UserPath": "/",
    "UserTagKey": "KeyRotation",
    "UserTagValue": "enabled",
    "SecretNamePrefix": "iam-key-rotation/",
    "SenderEmail": "",
    "NotificationEmails": "",
    "ScheduleExpression": "rate(1 day)",
    "ScheduleState": "ENABLED",
    "DryRun": "false",
}


def test_parameters_keep_their_names_and_defaults():
    parameters = SAM["Parameters"]
    actual = {name: str(parameters[name].get("Default")) for name in CONTRACT if name in parameters}
    assert actual == {name: str(default) for name, default in CONTRACT.items()}


def test_every_parameter_is_described():
    undescribed = [name for name, spec in SAM["Parameters"].items() if not str(spec.get("Description", "")).strip()]
    assert undescribed == []


# --- 4. operations: the alarm and log retention --------------------------------------------------------------


def test_failed_timed_out_aborted_and_unstarted_runs_raise_the_alarm_to_the_topic():
    resources, resolver = stack.resolve({"AlarmEmail": "oncall@example.com"})
    alarm = resolver.resolve(resources["RunFailedAlarm"]["Properties"])
    watched = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert watched == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted", "FailedInvocations"}
    for metric in alarm["Metrics"]:
        if "MetricStat" in metric and metric["MetricStat"]["Metric"]["Namespace"] == "AWS/Events":
            # the schedule could not start a run (a KMS or IAM denial, throttling): no execution exists to fail
            assert metric["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "RuleName", "Value": resolver.physical["RotationSchedule"]["Ref"]}]
        elif "MetricStat" in metric:
            assert metric["MetricStat"]["Metric"]["Dimensions"] == [
                {"Name": "StateMachineArn", "Value": resolver.physical["RotationStateMachine"]["Ref"]}
            ]
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if m.get("ReturnData", True)]
    assert set(re.findall(r"\w+", expression)) == {m["Id"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["AlarmActions"] == [resolver.physical["AlarmTopic"]["Ref"]]
    topic = resolver.resolve(resources["AlarmTopic"]["Properties"])
    assert topic["Subscription"] == [{"Protocol": "email", "Endpoint": "oncall@example.com"}]


def test_every_log_group_keeps_logs_for_the_retention_parameter():
    resources, resolver = stack.resolve({"LogRetentionDays": "30"})
    groups = {k: resolver.resolve(r["Properties"]) for k, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert set(groups) == {f"{function}Logs" for function in HANDLERS} | {"StateMachineLogGroup"}
    assert all(g["RetentionInDays"] == "30" for g in groups.values())
    functions = {k: resolver.resolve(r["Properties"]) for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    assert {k: f["LoggingConfig"]["LogGroup"] for k, f in functions.items()} == {
        k: resolver.physical[f"{k}Logs"]["Ref"] for k in HANDLERS
    }
