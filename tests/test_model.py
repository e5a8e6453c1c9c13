"""The rotation over months, explored by Hypothesis (emulator/model.py): scheduled, forced, dry and overlapping
runs, failing calls, and a person changing keys, secrets and users between them; the README's invariants after
every run, and no secret in anything published. A bounded, reproducible set of examples here; ``make soak``
explores thousands of steps.

A failing example Hypothesis finds (here or in make soak) is printed as a short program: replay it below as a
regular test, so it stays fixed.
"""

from unittest import mock

import decisions
import pytest
from hypothesis import HealthCheck, settings

from emulator.model import OrganizationModel, RotationModel

TestTheRotationOverMonths = pytest.mark.slow(RotationModel.TestCase)
TestTheRotationOverMonths.settings = settings(
    max_examples=6,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,  # the same examples on every run of make test; make soak draws new ones
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# The same months for a hub over its organization: fewer examples (each deploys two stacks), the same checks.
TestTheRotationOverMonthsAcrossAnOrganization = pytest.mark.slow(OrganizationModel.TestCase)
TestTheRotationOverMonthsAcrossAnOrganization.settings = settings(
    TestTheRotationOverMonths.settings, max_examples=2, stateful_step_count=20
)


FIRST = object()  # in a Script: the first of what the step offers (a key id, known only once the account exists)


class Script:
    """Stands in for Hypothesis' data: the draws of one story, in order."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def draw(self, strategy, label=None):
        value = self.draws.pop(0)
        return strategy.elements[0] if value is FIRST else value


DUE = {
    "start": "2026-01-05T06:00:00Z",
    "parameters": {"MaxKeyAgeDays": "20", "InstallWindowDays": "3", "RecoveryWindowDays": "3", "ParallelUsers": "1"},
    "users": [{"name": "app", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 25, "inSecret": True}]}],
}


def story(*steps, age_days=25):
    model = RotationModel()
    model.deploy({**DUE, "users": [{**DUE["users"][0], "keys": [{"ageDays": age_days, "inSecret": True}]}]})
    try:
        for step, data in steps:
            getattr(model, step)(data)
    finally:
        model.teardown()


def test_the_model_catches_a_cleanup_that_misses_a_key_created_in_the_same_second():
    lasting_store_failure = Script(("secretsmanager", "put_secret_value", "InternalServiceError", False), True, 0)
    story(("run_with_a_failing_call", lasting_store_failure))  # the workflow as it is: the unstored key is deleted

    with mock.patch.object(decisions, "iam_seconds", lambda moment: moment):  # the defect of issue 10, situation 1
        with pytest.raises(AssertionError, match="was created, and no secret holds it"):
            story(("run_with_a_failing_call", Script(("secretsmanager", "put_secret_value", "InternalServiceError", False), True, 0)))


def test_the_model_catches_a_run_silent_about_a_secret_overwritten_by_hand():
    def overwritten_then_a_run():
        return ("overwrite_a_secret", Script("iam-key-rotation/app", "text")), ("scheduled_run", Script(1))

    story(*overwritten_then_a_run(), age_days=5)  # the workflow as it is: app needs attention, every run

    silent = decisions._secret_lost  # the defect of issue 10, situation 3: a foreign secret goes unreported
    with mock.patch.object(decisions, "_secret_lost", lambda user, secret, *a: None if secret.foreign else silent(user, secret, *a)):
        with pytest.raises(AssertionError, match="was silent about users whose secret a person broke: \\['app'\\]"):
            story(*overwritten_then_a_run(), age_days=5)


ORGANIZATION = {
    **DUE,
    "parameters": {**DUE["parameters"], "TargetAccounts": "ORGANIZATION"},
    "users": [{"name": "app", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 5, "inSecret": True}]}],
    "organization": {"hubMemberStack": True, "accounts": [{"name": "payments", "users": [
        {"name": "app", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 25, "inSecret": True}]},
        {"name": "ci", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 5, "inSecret": True}]}]}]},
}


def organization_story(*steps):
    """The steps, each checked as the model checks every run, on a hub over one member account; the runs."""
    model = OrganizationModel()
    model.deploy(ORGANIZATION)
    try:
        member = model.aws.member_accounts["payments"]
        for step, draws in steps:
            getattr(model, step)(Script(*[member if d == "payments" else d for d in draws]))
        return member, model.aws.runs
    finally:
        model.teardown()


def test_a_person_at_work_in_a_member_account_and_every_kind_of_run_keep_every_check():
    member, runs = organization_story(
        ("scheduled_run", [0]),  # payments/app is due: rotated in its own account
        ("a_person_changes_the_account", ["delete_a_key", "payments", "ci", FIRST]),  # the key ci's secret holds
        ("scheduled_run", [1]),  # the check: payments/ci is reported (needs attention), nothing retired for it
        ("a_person_changes_the_account", ["overwrite_a_secret", "payments", "iam-key-rotation/app", "text"]),
        ("forced_run", ["payments", 1, "app", False, False]),
        ("run_with_a_failing_call", [("iam", "create_access_key", "ServiceFailure", True), False, 20]),
        ("two_runs_at_once", []),
        ("dry_run", []),
        ("a_person_changes_the_account", ["rename_a_user_in_case", "payments", "ci"]),
        ("scheduled_run", [3]),
    )

    told = [(u.get("account"), u["user"], u["outcome"]) for r in runs for u in ((r.output or {}).get("users") or [])]
    assert (member, "app", "rotated") in told and (member, "ci", "attention") in told
    assert len(runs) == 8 and {r.status for r in runs} == {"SUCCEEDED", "FAILED"}


def test_found_by_make_soak_a_hub_account_that_cannot_be_read_fails_the_run_and_is_named():
    # The hub's own account is the organization's management account: a lasting ListSecrets failure there was only
    # listed, not failing the run, and its user's secret deleted by hand went unreported.
    organization_story(
        ("a_person_changes_the_account", ["delete_a_secret", "123456789012", "iam-key-rotation/app", True]),
        ("scheduled_run", [0]),
        ("a_person_changes_the_account", ["delete_a_key", "123456789012", "app", FIRST]),
        ("run_with_a_failing_call", [("secretsmanager", "list_secrets", "InternalServiceError", False), True, 0]),
    )


def test_the_organization_model_catches_a_run_silent_about_a_member_accounts_broken_secret():
    def overwritten_in_the_member_then_a_run():
        return organization_story(
            ("a_person_changes_the_account", ["overwrite_a_secret", "payments", "iam-key-rotation/ci", "text"]),
            ("scheduled_run", [1]),
        )

    overwritten_in_the_member_then_a_run()  # the workflow as it is: payments/ci needs attention, every run

    silent = decisions._secret_lost
    with mock.patch.object(decisions, "_secret_lost", lambda user, secret, *a: None if secret.foreign else silent(user, secret, *a)):
        with pytest.raises(AssertionError, match=r"was silent about users whose secret a person broke: \['\d{12}/ci'\]"):
            overwritten_in_the_member_then_a_run()
