"""Failing AWS calls, on the real state machine, template and Lambda in the emulator: a store that fails deletes
the new key and fails the run, one failing user does not stop the others, throttling is retried with exponential
backoff, a planning failure is emailed with nothing changed; and the ambiguous failures: a store or a create that
took effect although its response was lost, a first store that fails, and a new key that can be neither stored nor
deleted, which the report names with the command to delete it by hand.

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans for leaked secrets after
every run."""

import dataclasses

from test_rotation_workflow import START, account_with, assert_sound, emulate, key, keys, outcomes, staged, summary  # noqa: F401 (emulate is a fixture)

from emulator.faults import failing


# --- failures ------------------------------------------------------------------------------------------------


def test_a_failed_store_deletes_the_new_key_and_fails_the_run(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = (keys("app"), staged(aws, "app"))

    with failing("secretsmanager", "put_secret_value", "InternalServiceError") as fault:
        run = aws.scheduled_run()

    assert fault.failures == 7  # the first call and MaxAttempts (6) retries
    assert (keys("app"), staged(aws, "app")) == before
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "SecretsManager.InternalServiceErrorException" in run.cause
    assert "app: FAILED" in run.emails[0].body
    assert_sound(aws, run)


def test_one_failing_user_does_not_stop_the_others(emulate):
    aws = emulate(account_with(*[(name, [key(95, in_secret=True)]) for name in ("a", "b", "c")]))

    with failing("iam", "create_access_key", "ServiceFailure", when=lambda user_name, *_, **__: user_name == "b"):
        run = aws.scheduled_run()

    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert outcomes(run) == {"a": "rotated", "b": "failed", "c": "rotated"}
    assert len(keys("a")) == 2 and len(keys("b")) == 1 and len(keys("c")) == 2
    assert "1 user(s) failed: b (" in run.cause
    assert_sound(aws, run)


def test_throttling_is_retried_with_exponential_backoff(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))

    with failing("iam", "create_access_key", "Throttling", times=2):
        run = aws.scheduled_run()

    assert run.status == "SUCCEEDED" and outcomes(run) == {"app": "rotated"}
    # FULL jitter: each delay is drawn from [0, 2 * 2^attempt] seconds.
    assert len(run.retry_delays) == 2
    assert 0 <= run.retry_delays[0] <= 2 and 0 <= run.retry_delays[1] <= 4


def test_a_planning_failure_is_emailed_and_fails_the_run_with_nothing_changed(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = (keys("app"), staged(aws, "app"))

    with failing("iam", "get_account_authorization_details", "AccessDenied"):
        run = aws.scheduled_run()

    assert (keys("app"), staged(aws, "app")) == before
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "AccessDenied" in run.cause
    (email,) = run.emails
    assert email.subject == f"IAM access key rotation {START}: run failed"
    assert "The run failed before any user was processed" in email.body


# --- ambiguous failures --------------------------------------------------------------------------------------


def test_a_store_that_succeeded_despite_its_error_keeps_the_new_key(emulate):
    # The first PutSecretValue takes effect but its response is lost; so do the retries (idempotent by token).
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")

    with failing("secretsmanager", "put_secret_value", "InternalServiceError", after=True):
        run = aws.scheduled_run()

    (new,) = set(keys("app")) - {old}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert keys("app") == {old: "Active", new: "Active"}
    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "rotated"})


def test_a_create_that_succeeded_despite_its_error_leaves_no_stray_key(emulate):
    # The first CreateAccessKey creates a key whose response is lost; the retry meets IAM's two-key limit.
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = (keys("app"), staged(aws, "app"))

    with failing("iam", "create_access_key", "ServiceFailure", times=1, after=True):
        run = aws.scheduled_run()

    assert (keys("app"), staged(aws, "app")) == before
    assert (run.status, outcomes(run)) == ("FAILED", {"app": "failed"})
    assert "was not stored, so it was deleted again" in summary(run)["users"][0]["detail"]

    aws.advance(1)
    retried = aws.scheduled_run()  # the fault has cleared: the next run converges
    assert outcomes(retried) == {"app": "rotated"} and len(keys("app")) == 2


def test_a_failed_first_store_deletes_the_new_key_and_creates_no_secret(emulate):
    aws = emulate(account_with(("app", [key(95)])))
    before = keys("app")

    with failing("secretsmanager", "create_secret", "InternalServiceError"):
        run = aws.scheduled_run()

    assert keys("app") == before and staged(aws, "app") == {}
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert "SecretsManager.InternalServiceErrorException" in run.cause


def test_a_new_key_that_can_be_neither_stored_nor_deleted_is_reported_for_deletion_by_hand(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")

    with failing("secretsmanager", "put_secret_value", "InternalServiceError"), failing(
        "iam", "delete_access_key", "ServiceFailure"
    ):
        run = aws.scheduled_run()

    (orphan,) = set(keys("app")) - {old}
    assert staged(aws, "app") == {"AWSCURRENT": old}  # consumers still have a working key
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    body = run.emails[0].body.replace("\n    ", " ")
    assert f"aws iam delete-access-key --user-name app --access-key-id {orphan}" in body
    # Invariant 2 holds only because the report names the key with the command to delete it.
    assert aws.invariant_violations(run) == []
    silent = dataclasses.replace(
        run,
        cause=run.cause.replace(orphan, "<key>"),
        emails=[dataclasses.replace(e, body=e.body.replace(orphan, "<key>")) for e in run.emails],
        published=[(subject, message.replace(orphan, "<key>")) for subject, message in run.published],
    )
    assert aws.invariant_violations(silent) == [
        f"run-001: key {orphan} was created, and no secret holds it, nor was it deleted or reported for deletion"
    ]
