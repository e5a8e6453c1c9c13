"""Runs that overlap or repeat change things once, on the real template, state machine and Lambdas in the
emulator: a run that starts while another is still running changes nothing (single flight), really overlapping;
the same input twice rotates once, and a retried PutSecretValue never adds a second version (idempotency).

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans every run's output,
cause, emails and Lambda payloads for secret access keys after each test.
"""

from __future__ import annotations

import json
import threading

import boto3
import decisions
import pytest
from safety_helpers import FORCED
from test_rotation_workflow import (  # noqa: F401 (emulate is a fixture)
    account_with,
    emulate,
    key,
    keys,
    outcomes,
    staged,
)

from emulator.faults import failing, in_state
from emulator.stack import ACCOUNT_ID

# --- helpers -------------------------------------------------------------------------------------------------


def version_count(secret_name):
    """Every version of the secret, staged or not."""
    sm = boto3.client("secretsmanager")
    return len(sm.list_secret_version_ids(SecretId=secret_name, IncludeDeprecated=True)["Versions"])


def sent_emails():
    from moto.ses.models import ses_backends

    return len(ses_backends[ACCOUNT_ID]["us-east-1"].sent_messages)


# --- single flight -------------------------------------------------------------------------------------------


class PausedCreate:
    """Holds the first run that reaches "Create new access key" (run A, mid-rotation) until ``release`` is set.
    Later runs go through, so a second run that did not stop would really create a key."""

    def __init__(self):
        self.paused, self.release = threading.Event(), threading.Event()
        self.calls = 0

        def hold_the_first():
            self.calls += 1
            if self.calls == 1:
                self.paused.set()
                assert self.release.wait(30), "run A was never released"

        self._hook = in_state("Create new access key", before=hold_the_first)

    def __enter__(self):
        self._hook.__enter__()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self._hook.__exit__(*exc)


def overlapping_runs(aws, first_input, second_input):
    """Run A (``first_input``) on a thread, paused as it is about to create a key for ``app``; while it is
    RUNNING, run B (``second_input``) on this thread; then release A. Returns (A's Run, B's description, B's
    history, the pause), after checking that B changed no key or secret and sent no email."""
    runs_a = []
    with PausedCreate() as pause:
        thread_a = threading.Thread(target=lambda: runs_a.append(aws.start(first_input)), daemon=True)
        thread_a.start()
        assert pause.paused.wait(30), "run A never reached CreateAccessKey"

        before_b = (keys("app"), staged(aws, "app"), sent_emails())
        arn_b = aws.sfn.start_execution(
            stateMachineArn=aws.deployment.state_machine_arn, name="overlapping", input=json.dumps(second_input)
        )["executionArn"]
        b = aws.sfn.describe_execution(executionArn=arn_b)
        history_b = aws.sfn.get_execution_history(executionArn=arn_b, maxResults=1000)["events"]
        assert (keys("app"), staged(aws, "app"), sent_emails()) == before_b  # B changed nothing, emailed nobody
        arn_a = aws.deployment.state_machine_arn.replace(":stateMachine:", ":execution:") + ":run-001"
        assert aws.sfn.describe_execution(executionArn=arn_a)["status"] == "RUNNING"  # they really overlapped

        pause.release.set()
        thread_a.join(30)
        assert not thread_a.is_alive(), "run A did not finish"
    (a,) = runs_a
    return a, b, history_b, pause


@pytest.mark.parametrize("second", ["forced-on-demand", "same-scheduled-input"])
def test_a_run_that_starts_while_another_runs_changes_nothing(emulate, second):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")
    scheduled = aws.scheduled_input()
    second_input = FORCED if second == "forced-on-demand" else scheduled

    a, b, history_b, pause = overlapping_runs(aws, scheduled, second_input)

    assert b["status"] == "SUCCEEDED"
    output_b = json.loads(b["output"])
    assert set(output_b) == {"skipped", "reason"} and output_b["skipped"] is True
    assert "run run-001 (started " in output_b["reason"] and "is still running" in output_b["reason"]
    assert "so this run changed nothing" in output_b["reason"]
    entered_b = [e["stateEnteredEventDetails"]["name"] for e in history_b if "stateEnteredEventDetails" in e]
    assert entered_b == ["Plan the run", "Read why the run is skipped", "Another run is in progress"]
    assert not [s for s in aws.issued_secrets if s in b["output"]]

    assert (a.status, outcomes(a)) == ("SUCCEEDED", {"app": "rotated"})  # no other run was running: A proceeded
    assert pause.calls == 1  # one CreateAccessKey in all: never two rotations, never LimitExceeded
    (new,) = set(keys("app")) - {old}
    assert keys("app") == {old: "Active", new: "Active"}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert version_count("iam-key-rotation/app") == 2
    assert "LimitExceeded" not in json.dumps(a.all_events(), default=str)

    # The same input once nothing else runs: it proceeds (not skipped), and the rotation is already done.
    again = aws.start(second_input)
    assert again.status == "SUCCEEDED" and "skipped" not in again.output
    assert outcomes(again) == {} and keys("app") == {old: "Active", new: "Active"}


def test_a_skipped_run_gives_its_reason_as_a_sentence(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))

    _, b, _, _ = overlapping_runs(aws, aws.scheduled_input(), FORCED)

    assert json.loads(b["output"])["reason"].startswith("run run-001 (started ")


# --- idempotency ---------------------------------------------------------------------------------------------


def test_the_same_forced_input_twice_rotates_once(emulate):
    aws = emulate(account_with(("app", [key(3, in_secret=True)])))
    (old,) = keys("app")
    first = aws.start(FORCED)
    (new,) = set(keys("app")) - {old}
    after_first = ({old: "Active", new: "Active"}, {"AWSCURRENT": new, "AWSPREVIOUS": old})
    assert outcomes(first) == {"app": "rotated"} and (keys("app"), staged(aws, "app")) == after_first

    second = aws.start(FORCED)  # at once, as a double click does
    aws.advance(1 / 24)
    third = aws.start(FORCED)  # an hour later, as a re-submitted file does: its "time" is still START

    for replay in (second, third):
        assert replay.status == "SUCCEEDED"
        assert outcomes(replay) == {} and replay.emails == [] and replay.output["unchangedUsers"] == 1
        assert "Create new access key" not in replay.states_entered()
    assert (keys("app"), staged(aws, "app")) == after_first
    assert version_count("iam-key-rotation/app") == 2


def test_a_scheduled_input_delivered_again_later_changes_nothing_more(emulate):
    # EventBridge Scheduler retries a delivery (MaximumRetryAttempts 3) with the same scheduled time.
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    scheduled = aws.scheduled_input()
    aws.start(scheduled)
    after_first = (keys("app"), staged(aws, "app"))

    aws.advance(2 / 24)
    again = aws.start(scheduled)

    assert (keys("app"), staged(aws, "app")) == after_first
    assert outcomes(again) == {} and again.emails == []


def test_a_retried_put_secret_value_never_creates_a_second_version(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")
    assert version_count("iam-key-rotation/app") == 1

    # The first PutSecretValue takes effect and its response is lost; the Retry sends the same ClientRequestToken.
    with failing("secretsmanager", "put_secret_value", "InternalServiceError", times=1, after=True, runs_only=True) as f:
        run = aws.scheduled_run()

    assert f.failures == 1 and f.calls == 2
    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "rotated"})
    (new,) = set(keys("app")) - {old}
    assert version_count("iam-key-rotation/app") == 2  # the seeded version and one for the new key
    versions = boto3.client("secretsmanager").list_secret_version_ids(SecretId="iam-key-rotation/app")["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted(map(decisions.key_version_id, (old, new)))
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert len(run.retry_delays) == 1 and 0 <= run.retry_delays[0] <= 2
    assert "Look for unstored keys" not in run.states_entered()  # the Retry succeeded: no cleanup was needed
