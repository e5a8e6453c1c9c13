"""Fault-injection matrix, continued: faults that end one user or hit the cleanup, on the emulator.

For each per-user operation of MATRIX (tests/test_fault_matrix.py, whose table and helpers these tests use),
(b) for the middle one of three users only: the other two complete, and the run reports the one that failed
and ends FAILED. Two calls happen only after another fault and get their own tests: the cleanup's
DeleteAccessKey after a failed store, and the reconcile phase failing after a store that truly failed (the one
case that legitimately leaves a key unstored, and names it).

Every fault is armed only while an execution runs (``runs_only``); the ``emulate`` fixture
(tests/test_rotation_workflow.py) checks the invariants and scans for leaked secrets after every run.
"""

from __future__ import annotations

import boto3
import pytest
from test_fault_matrix import assert_bounded, backoff_caps, fixture, reference, rows, run_with_fault, sfn_error, snapshot
from test_rotation_workflow import account_with, emulate, key, outcomes  # noqa: F401 (fixture)

from emulator import account
from emulator.faults import failing, lambda_function


# --- one user of three fails for the whole run, the others complete ------------------------------------------

USERS = ("alice", "bob", "carol")  # the plan orders equally old users by name: bob is acted on in the middle


@pytest.mark.parametrize("row", [r for r in rows("read", "user") if r.values[0].per_user])
def test_a_lasting_failure_of_the_middle_user_ends_only_that_user(emulate, row):
    expected = reference(row)
    aws = emulate(fixture(row, USERS), **dict(row.parameters))

    faulty = run_with_fault(aws, row, row.persistent, user="bob", users=USERS)
    run = faulty.run

    assert faulty.fault.failures >= 1, f"{faulty.fault.operation}: the run never made this call for bob"
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    done = expected.outcomes["app"]
    assert outcomes(run) == {"alice": done, "bob": "failed", "carol": done}
    assert run.cause.startswith("1 user(s) failed: bob (")
    (email,) = run.emails
    for user, outcome in (("alice", done), ("bob", "failed"), ("carol", done)):
        assert f"{user}: {outcome.upper()}" in email.body
    end = snapshot(aws)
    assert end["alice"] == end["carol"] == expected.after["app"]
    if row.stage == "read":
        assert end["bob"] == expected.before["app"]


# --- the cleanup's own DeleteAccessKey ---------------------------------------------------------------------


def test_a_transient_failure_of_the_cleanup_delete_is_retried_and_the_unstored_key_is_gone(emulate):
    # "Delete unstored key" runs only after a store that failed for good, so its run fails whatever the delete
    # does; one failure of the delete must still not leave the key behind. (When the delete fails for the whole
    # run, the email gives the command: test_rotation_failures' ..._neither_stored_nor_deleted_... test.)
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = snapshot(aws)

    with failing("secretsmanager", "put_secret_value", "InternalServiceError", runs_only=True) as store, failing(
        "iam", "delete_access_key", "Throttling", times=1, runs_only=True
    ) as delete:
        run = aws.scheduled_run()

    assert (store.failures, delete.failures, delete.calls) == (7, 1, 2)
    assert snapshot(aws) == before
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "was not stored, so it was deleted again" in run.cause
    store_error = sfn_error("secretsmanager", "InternalServiceError")
    caps = backoff_caps("Store new key in secret", store_error, 6) + backoff_caps(
        "Delete unstored key", sfn_error("iam", "Throttling"), 1
    )
    assert_bounded(run.retry_delays, caps)


# --- a new key the cleanup cannot check ----------------------------------------------------------------------


# The one case here where a created key is legitimately left unstored: the store failed and the reconcile
# Lambda that asks the secret cannot run, so the workflow cannot tell whether the store took effect after all,
# and deleting a key the secret may hold would lock every consumer out. It reports the key instead, with the
# command to delete it, which is what invariant 2 then asks.
def test_a_new_key_the_cleanup_cannot_check_is_named_for_a_person_and_blocks_the_user_until_deleted(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = [k.id for k in account.keys_of("app")]

    with failing("secretsmanager", "put_secret_value", "InternalServiceError", runs_only=True) as store, failing(
        "lambda", "invoke", "ServiceException", when=lambda_function("Reconcile"), runs_only=True
    ) as check:
        run = aws.scheduled_run()

    assert (store.failures, check.failures) == (7, 7)
    (orphan,) = {k.id for k in account.keys_of("app")} - {old}
    assert aws.invariant_violations(run) == []  # the report names the key, with the command to delete it
    assert {v.key_id for v in account.secret_versions("iam-key-rotation/app") if "AWSCURRENT" in v.stages} == {old}
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    body = " ".join(run.emails[0].body.split())
    command = f"aws iam delete-access-key --user-name app --access-key-id {orphan}"
    assert "app: FAILED" in body and f"could not check whether the secret holds the new key {orphan}" in body
    assert command in body and "Lambda.ServiceException" in body

    # The fault clears. The unstored key is an Active key newer than the one the secret holds, so the next run
    # blocks the user, as a fresh run on this account would, and changes nothing.
    blocked = aws.scheduled_run()
    assert (blocked.status, outcomes(blocked)) == ("SUCCEEDED", {"app": "blocked"})
    assert blocked.keys_after == blocked.keys_before
    # A person runs the command from the email; the next run rotates.
    boto3.client("iam").delete_access_key(UserName="app", AccessKeyId=orphan)
    rotated = aws.scheduled_run()
    assert (rotated.status, outcomes(rotated)) == ("SUCCEEDED", {"app": "rotated"})
    assert aws.invariant_violations(blocked, rotated) == []
    assert aws.leaked_texts(run, blocked, rotated) == []
