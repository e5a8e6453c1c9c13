"""Step Functions' Distributed Map on the emulator (emulator/distributed_map.py), each behaviour proven twice: as
AWS runs it on the emulator, and let through (or hung) by plain moto, so each test can fail."""

from __future__ import annotations

import contextlib
import json
import sys
import textwrap
from datetime import datetime, timezone

import boto3
import pytest
import tool_cache
from moto import mock_aws

from emulator.faithful_moto import Clock, faithful_moto
from emulator.runner import MOTO_CONFIG

ROLE = "arn:aws:iam::123456789012:role/runs-the-map"
BUCKET = "map-run-records"


def machine(tolerated_percentage=None, result_writer=True, max_concurrency=2):
    """Each item: {"n": number, "fail": bool}. A child doubles n, or fails when told to."""
    each = {
        "Type": "Map",
        "Label": "each",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": BUCKET, "Key": "items.json"},
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Fail?",
            "States": {
                "Fail?": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Fail"}], "Default": "Double"},
                "Fail": {"Type": "Fail", "Error": "ItemFailed", "Cause": "told to"},
                "Double": {"Type": "Pass", "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "End": True},
            },
        },
        "MaxConcurrency": max_concurrency,
        "End": True,
    }
    if tolerated_percentage is not None:
        each["ToleratedFailurePercentage"] = float(tolerated_percentage)
    if result_writer:
        each["ResultWriter"] = {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": BUCKET, "Prefix": "results"}}
    return {"StartAt": "Each", "States": {"Each": each}}


@contextlib.contextmanager
def moto_account(strict: bool):
    with mock_aws(config=MOTO_CONFIG):
        with faithful_moto(Clock(datetime(2026, 1, 5, 6, tzinfo=timezone.utc)), {}, strict=strict):
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            yield


def run(definition, items) -> tuple[dict, str]:
    """Start the machine over ``items``; (its description, its execution ARN)."""
    boto3.client("s3").put_object(Bucket=BUCKET, Key="items.json", Body=json.dumps(items).encode())
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(name="each", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="one", input="{}")["executionArn"]
    return sfn.describe_execution(executionArn=execution), execution


def holds_on_the_emulator_and_not_on_plain_moto(check):
    with moto_account(strict=True):
        check()
    with moto_account(strict=False), pytest.raises(Exception):  # an assertion, or moto failing on the call
        check()


ITEMS = [{"n": 1, "fail": False}, {"n": 2, "fail": True}, {"n": 3, "fail": False}]


def test_each_item_is_a_child_execution_with_its_own_history_listed_by_its_map_run():
    def check():
        described, execution = run(machine(tolerated_percentage=100), ITEMS)
        sfn = boto3.client("stepfunctions")
        (map_run,) = sfn.list_map_runs(executionArn=execution)["mapRuns"]
        children = sfn.list_executions(mapRunArn=map_run["mapRunArn"])["executions"]
        assert [c["status"] for c in children] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
        assert len({c["executionArn"] for c in children}) == 3 and execution not in {c["executionArn"] for c in children}
        first = sfn.describe_execution(executionArn=children[0]["executionArn"])
        assert json.loads(first["input"]) == ITEMS[0] and json.loads(first["output"]) == {"doubled": 2}
        failed = sfn.describe_execution(executionArn=children[1]["executionArn"])
        assert (failed["error"], failed["cause"]) == ("ItemFailed", "told to")
        history = sfn.get_execution_history(executionArn=children[0]["executionArn"])["events"]
        types = [e["type"] for e in history]
        assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded" and "PassStateEntered" in types
        parent = sfn.get_execution_history(executionArn=execution)["events"]
        assert "PassStateEntered" not in [e["type"] for e in parent]  # the children's steps are theirs alone

    holds_on_the_emulator_and_not_on_plain_moto(check)


@pytest.mark.parametrize("tolerated, status", [(50, "FAILED"), (34, "SUCCEEDED")], ids=["past-the-threshold", "within-it"])
def test_failed_items_past_the_tolerated_threshold_fail_the_map(tolerated, status):
    items = ITEMS if status == "SUCCEEDED" else [ITEMS[1], ITEMS[1], ITEMS[0]]  # one of three failing, or two

    def check():
        described, _ = run(machine(tolerated_percentage=tolerated), items)
        assert described["status"] == status, described
        if status == "FAILED":
            assert described["error"] == "States.ExceedToleratedFailureThreshold"
            assert "2 of 3 items failed" in described["cause"]

    if status == "SUCCEEDED":
        with moto_account(strict=True):
            check()
    else:
        holds_on_the_emulator_and_not_on_plain_moto(check)


def test_a_map_without_tolerance_fails_on_the_first_failed_item():
    def check():
        described, _ = run(machine(), ITEMS)
        assert (described["status"], described.get("error")) == ("FAILED", "States.ExceedToleratedFailureThreshold")

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_the_result_writer_writes_every_child_execution_and_a_manifest():
    def check():
        described, _ = run(machine(tolerated_percentage=100), ITEMS)
        output = json.loads(described["output"])
        s3 = boto3.client("s3")
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=output["ResultWriterDetails"]["Key"])["Body"].read())
        assert manifest["MapRunArn"] == output["MapRunArn"] and manifest["DestinationBucket"] == BUCKET
        (succeeded,) = manifest["ResultFiles"]["SUCCEEDED"]
        (failed,) = manifest["ResultFiles"]["FAILED"]
        records = json.loads(s3.get_object(Bucket=BUCKET, Key=succeeded["Key"])["Body"].read())
        assert sorted(json.loads(r["Output"])["doubled"] for r in records) == [2, 6]
        assert {json.loads(r["Input"])["n"] for r in records} == {1, 3}
        (failure,) = json.loads(s3.get_object(Bucket=BUCKET, Key=failed["Key"])["Body"].read())
        assert (failure["Status"], failure["Error"], failure["Cause"]) == ("FAILED", "ItemFailed", "told to")
        assert succeeded["Key"].startswith("results/") and succeeded["Size"] > 0

    holds_on_the_emulator_and_not_on_plain_moto(check)


@pytest.mark.slow
def test_a_worker_takes_a_thousand_items_without_recursing():
    items = [{"n": i, "fail": False} for i in range(1000)]
    with moto_account(strict=True):
        described, execution = run(machine(tolerated_percentage=0, result_writer=False, max_concurrency=1), items)
        assert described["status"] == "SUCCEEDED"
        assert len(json.loads(described["output"])) == 1000

    # Plain moto recurses once per item: the worker thread dies, and the run never ends. In a process of its own,
    # so that the hung run cannot take this one with it.
    script = textwrap.dedent(
        f"""
        import json, sys, threading
        sys.path[:0] = {sys.path[:3]!r}
        import conftest
        from tests.test_distributed_map import machine, moto_account, run
        items = [{{"n": i, "fail": False}} for i in range(1000)]
        done, ended = [], threading.Event()
        def worker_died(args):
            done.append(args.exc_type.__name__)
            ended.set()
        threading.excepthook = worker_died
        def go():
            with moto_account(strict=False):
                done.append(run(machine(tolerated_percentage=0, result_writer=False, max_concurrency=1), items)[0]["status"])
            ended.set()
        threading.Thread(target=go, daemon=True).start()
        ended.wait(60)
        print(json.dumps(done))
        """
    )
    # Its verdict on the same moto (every package of the virtualenv), emulator and test code is reused: tests/tool_cache.py.
    root = _root()
    code = [root / "emulator", root / "functions", root / "statemachine", root / "template.yaml", root / "tests" / "conftest.py",
            root / "tests" / "test_distributed_map.py"]
    plain = tool_cache.run([sys.executable, "-c", script], inputs=code, cwd=root, timeout=120, env_prefixes=("AWS_", "MOTO"),
                           keep=lambda r: r.stdout.strip().splitlines()[-1:] == ['["RecursionError"]'])
    assert json.loads(plain.stdout.strip().splitlines()[-1]) == ["RecursionError"], plain.stdout + plain.stderr[-2000:]


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
