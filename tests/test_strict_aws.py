"""Each way the emulator is made as strict as AWS (emulator/strict_aws.py), proven twice: the AWS behaviour holds on
the emulator, and plain moto (the emulator without strict_aws) lets it through, so each test can fail."""

from __future__ import annotations

import contextlib
import os
import json
import re
import threading
from datetime import datetime, timezone
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from emulator.faithful_moto import Clock, faithful_moto
from emulator.runner import MOTO_CONFIG
from emulator.stack import client

START = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
ROLE = "arn:aws:iam::123456789012:role/runs-the-check"


@contextlib.contextmanager
def moto_account(strict: bool):
    with mock_aws(config=MOTO_CONFIG):
        clock = Clock(START)
        with faithful_moto(clock, {}, strict=strict):
            yield clock


def holds_on_the_emulator_and_not_on_plain_moto(check):
    with moto_account(strict=True) as clock:
        check(clock)
    with moto_account(strict=False) as clock, pytest.raises(AssertionError):
        check(clock)


def error_code(call) -> str | None:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"]
    return None


iam = lambda: client("iam")  # noqa: E731  (one client: building one costs ~10 ms)
secrets = lambda: client("secretsmanager")  # noqa: E731


# --- time ----------------------------------------------------------------------------------------------------

TIMES = {
    "StartAt": "Before",
    "States": {
        "Before": {"Type": "Pass", "Parameters": {"at.$": "$$.State.EnteredTime"}, "ResultPath": "$.before", "Next": "Create"},
        "Create": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:iam:createAccessKey",
            "Parameters": {"UserName": "app"},
            "ResultSelector": {"id.$": "$.AccessKey.AccessKeyId"},
            "ResultPath": "$.key",
            "Next": "After",
        },
        "After": {"Type": "Pass", "Parameters": {"at.$": "$$.State.EnteredTime"}, "ResultPath": "$.after", "End": True},
    },
}
AWS_STATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_states_have_millisecond_times_that_move_and_iam_dates_are_whole_seconds():
    def check(clock):
        iam().create_user(UserName="app")
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(name="times", definition=json.dumps(TIMES), roleArn=ROLE)["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, name="one", input="{}")["executionArn"]
        output = json.loads(sfn.describe_execution(executionArn=arn)["output"])
        before, after = output["before"]["at"], output["after"]["at"]
        assert AWS_STATE_TIME.fullmatch(before) and AWS_STATE_TIME.fullmatch(after), (before, after)
        assert before < after  # the call between them took time
        (created,) = [k["CreateDate"] for k in iam().list_access_keys(UserName="app")["AccessKeyMetadata"]]
        assert created.microsecond == 0
        # The key was created after "Before" was entered, yet IAM's whole second reads as earlier when that state
        # entered past its second's start: the trap the reconcile step must not fall into.
        assert created.strftime("%Y-%m-%dT%H:%M:%S") <= before[:19]
        assert clock.now > START

    holds_on_the_emulator_and_not_on_plain_moto(check)


# --- IAM names, tags and keys --------------------------------------------------------------------------------


def test_iam_user_names_are_unique_whatever_their_case_and_found_by_any_spelling():
    def check(clock):
        iam().create_user(UserName="alice")
        assert error_code(lambda: iam().create_user(UserName="Alice")) == "EntityAlreadyExists"
        assert iam().get_user(UserName="ALICE")["User"]["UserName"] == "alice"
        assert [u["UserName"] for u in iam().list_users()["Users"]] == ["alice"]

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_a_renamed_or_moved_user_keeps_its_tags_and_keys():
    def check(clock):
        iam().create_user(UserName="app", Tags=[{"Key": "KeyRotation", "Value": "enabled"}])
        key_id = iam().create_access_key(UserName="app")["AccessKey"]["AccessKeyId"]
        iam().update_user(UserName="app", NewUserName="App")
        iam().update_user(UserName="App", NewPath="/moved/")
        assert iam().list_user_tags(UserName="App")["Tags"] == [{"Key": "KeyRotation", "Value": "enabled"}]
        assert [k["AccessKeyId"] for k in iam().list_access_keys(UserName="app")["AccessKeyMetadata"]] == [key_id]
        assert iam().get_user(UserName="app")["User"]["Path"] == "/moved/"

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_a_user_takes_at_most_50_tags():
    def check(clock):
        iam().create_user(UserName="app", Tags=[{"Key": f"team-{i}", "Value": "x"} for i in range(50)])
        assert error_code(lambda: iam().tag_user(UserName="app", Tags=[{"Key": "one-more", "Value": "x"}])) == "LimitExceeded"
        iam().tag_user(UserName="app", Tags=[{"Key": "team-0", "Value": "changed"}])  # a new value needs no room
        assert len(iam().list_user_tags(UserName="app")["Tags"]) == 50

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_two_creates_at_once_never_give_a_user_a_third_key():
    """Both creates reach IAM's two-key check before either adds its key, unless calls are one at a time."""
    from moto.iam.models import IAMBackend

    def check(clock):
        iam().create_user(UserName="app")
        iam().create_access_key(UserName="app")
        both_checked = threading.Barrier(2, timeout=0.5)
        list_access_keys = IAMBackend.list_access_keys

        def checked_together(backend, user_name):
            with contextlib.suppress(threading.BrokenBarrierError):  # alone: the other call waits for this one
                both_checked.wait()
            seen = list(list_access_keys(backend, user_name))
            with contextlib.suppress(threading.BrokenBarrierError):  # both have looked before either adds a key
                both_checked.wait()
            return seen

        codes = []
        with mock.patch.object(IAMBackend, "list_access_keys", checked_together):
            threads = [threading.Thread(target=lambda: codes.append(error_code(lambda: iam().create_access_key(UserName="app"))))
                       for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
        assert sorted(codes, key=lambda code: code or "") == [None, "LimitExceeded"], codes
        assert len(iam().list_access_keys(UserName="app")["AccessKeyMetadata"]) == 2

    holds_on_the_emulator_and_not_on_plain_moto(check)


# --- Secrets Manager -----------------------------------------------------------------------------------------


def test_a_secret_name_takes_only_letters_digits_and_some_punctuation():
    def check(clock):
        assert error_code(lambda: secrets().create_secret(Name="iam-key-rotation/a,b", SecretString="{}")) == "ValidationException"
        secrets().create_secret(Name="iam-key-rotation/a_b+c=d.e@f-g", SecretString="{}")

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_listing_secrets_while_another_thread_creates_one_loses_nothing():
    """A parallel Map creates a secret on one thread while another lists them: moto's store is a plain dict."""
    from moto.secretsmanager.models import FakeSecret

    def check(clock):
        secrets().create_secret(Name="iam-key-rotation/first", SecretString="{}")
        to_dict = FakeSecret.to_dict
        creator = threading.Thread(target=lambda: secrets().create_secret(Name="iam-key-rotation/second", SecretString="{}"))

        def create_meanwhile(secret):
            if not creator.is_alive() and creator.ident is None:
                creator.start()
                creator.join(0.5)  # with one call at a time, the create waits for the listing
            return to_dict(secret)

        with mock.patch.object(FakeSecret, "to_dict", create_meanwhile):
            try:
                listed = secrets().list_secrets()["SecretList"]
            except Exception as error:  # moto's own RuntimeError, surfaced by the client
                raise AssertionError(f"ListSecrets failed: {error}") from None
        creator.join(10)
        assert [s["Name"] for s in listed] == ["iam-key-rotation/first"]
        names = {s["Name"] for s in secrets().list_secrets()["SecretList"]}
        assert names == {"iam-key-rotation/first", "iam-key-rotation/second"}

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_account_details_come_in_pages_as_iam_sends_them():
    """faithful_moto, not strict_aws: a caller that forgets the Marker would plan a hundred users of thousands."""

    def check(clock):
        for i in range(250):
            iam().create_user(UserName=f"svc-{i:03d}")
        first = iam().get_account_authorization_details(Filter=["User"])
        assert len(first["UserDetailList"]) == 100 and first["IsTruncated"] is True
        pages = iam().get_paginator("get_account_authorization_details").paginate(Filter=["User"], PaginationConfig={"PageSize": 1000})
        assert sum(len(p["UserDetailList"]) for p in pages) == 250

    with moto_account(strict=True) as clock:
        check(clock)
    with mock_aws(config=MOTO_CONFIG), pytest.raises(AssertionError):
        check(None)


# --- Lambda ------------------------------------------------------------------------------------------------------

HANDLER = '''
import os


def handler(event, context):
    seen = os.environ.get("ONLY_MINE")
    event_ready, event_checked = CHECKS
    event_ready.set()  # another thread now reads the process's environment while this invocation runs
    event_checked.wait(5)
    return {"seen": seen, "still": os.environ.get("ONLY_MINE"), "listed": dict(os.environ).get("ONLY_MINE")}
'''


def function_with_only_mine(name: str, handler: str):
    """A Lambda function ``name`` with its role and the variable ONLY_MINE=yes; the Lambda client to invoke it."""
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam().create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    lam = boto3.client("lambda")
    lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler=handler,
        Code={"ZipFile": b"emulated"}, Environment={"Variables": {"ONLY_MINE": "yes"}},
    )
    return lam


def test_a_functions_environment_is_its_invocations_alone(tmp_path):
    # On AWS each invocation has its environment to itself. The emulator once set a function's variables in the
    # process's os.environ: every other thread saw them while it ran, and their removal broke a concurrent
    # dict(os.environ) (KeyError), which the interpreter turned into a States.Runtime failure of another user.
    (tmp_path / "env_handler.py").write_text(HANDLER)
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("env_handler")
        ready, checked = threading.Event(), threading.Event()
        module.CHECKS = (ready, checked)
        seen_elsewhere = []

        def read_meanwhile():
            ready.wait(5)
            for _ in range(200):
                seen_elsewhere.append(("ONLY_MINE" in dict(os.environ), os.environ.get("ONLY_MINE")))
            checked.set()

        with mock_aws(config=MOTO_CONFIG):
            functions = {"env-fn": (tmp_path, "env_handler.handler")}
            with faithful_moto(Clock(START), functions, strict=True):
                lam = function_with_only_mine("env-fn", "env_handler.handler")
                reader = threading.Thread(target=read_meanwhile)
                reader.start()
                answer = json.loads(lam.invoke(FunctionName="env-fn")["Payload"].read())
                reader.join(5)
        assert answer == {"seen": "yes", "still": "yes", "listed": "yes"}
        assert seen_elsewhere and set(seen_elsewhere) == {(False, None)}
        assert "ONLY_MINE" not in os.environ
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("env_handler", None)


THREADING_HANDLER = '''
import os
from concurrent.futures import ThreadPoolExecutor


def handler(event, context):
    with ThreadPoolExecutor(2) as pool:
        return {"inWorkers": list(pool.map(lambda _: os.environ.get("ONLY_MINE"), range(2)))}
'''


def test_threads_a_handler_starts_see_its_functions_environment(tmp_path):
    # On AWS a function's environment is its process's: the workers of a handler's ThreadPoolExecutor (the planning
    # functions read accounts and users in parallel) see it. With the invocation's variables kept per thread, they
    # did not, and called with the process's keys instead of the function role's.
    (tmp_path / "threading_handler.py").write_text(THREADING_HANDLER)
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with mock_aws(config=MOTO_CONFIG):
            functions = {"threads-fn": (tmp_path, "threading_handler.handler")}
            with faithful_moto(Clock(START), functions, strict=True):
                lam = function_with_only_mine("threads-fn", "threading_handler.handler")
                answer = json.loads(lam.invoke(FunctionName="threads-fn")["Payload"].read())
        assert answer == {"inWorkers": ["yes", "yes"]}
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("threading_handler", None)
