"""A scheduled run reads the account's credential report (IAM's one bulk read of keys) and does not read the keys of
a user it shows needs nothing; on the real template, state machine and Lambdas in the emulator, whose report is as
stale as AWS's may be (emulator/credential_report.py). The rule itself: tests/test_decisions_report.py.

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans for leaked secrets after
every run."""

import time
from datetime import timedelta
from unittest import mock

import decisions
import reading
from test_rotation_workflow import account_with, emulate, iam, key, keys, outcomes, staged, summary  # noqa: F401 (emulate is a fixture)
from test_strict_aws import moto_account

from emulator import account, stack
from emulator.faults import about_user, failing

STEADY_AND_DUE = account_with(("steady", [key(11, in_secret=True)]), ("due", [key(85, in_secret=True)]))
HOUR = 1 / 24


def test_a_scheduled_run_reads_no_keys_of_a_user_the_report_shows_needs_nothing(emulate):
    aws = emulate(STEADY_AND_DUE)

    with failing("iam", "list_access_keys", "ServiceFailure", when=about_user("steady")):
        run = aws.scheduled_run()  # had it read steady's keys, steady would be unreadable and the run FAILED

    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"due": "rotated"})
    assert (summary(run)["managedUsers"], summary(run)["unchangedUsers"]) == (2, 1)  # steady: counted, unchanged


def test_without_the_report_every_users_keys_are_read_and_nothing_else_changes(emulate):
    aws = emulate(STEADY_AND_DUE)

    with failing("iam", "generate_report", "AccessDenied"), failing(
        "iam", "list_access_keys", "ServiceFailure", when=about_user("steady")
    ):
        run = aws.scheduled_run()

    # The report was refused (a member stack from before it was read): steady's keys were read, and failed.
    assert outcomes(run) == {"due": "rotated", "steady": "failed"} and run.status == "FAILED"
    (steady,) = [u for u in summary(run)["users"] if u["user"] == "steady"]
    assert "could not be read (ServiceFailure" in steady["detail"]


def test_a_change_by_hand_hides_behind_a_report_younger_than_four_hours_and_the_next_report_shows_it(emulate):
    aws = emulate(STEADY_AND_DUE)
    aws.scheduled_run()  # IAM writes the account's report now
    held = staged(aws, "steady")["AWSCURRENT"]
    aws.advance(HOUR)
    iam().delete_access_key(UserName="steady", AccessKeyId=held)  # its consumers are locked out
    iam().create_access_key(UserName="steady")

    aws.advance(HOUR)
    soon = aws.scheduled_run()  # within four hours: IAM hands out the same report, which shows one young key
    aws.advance(4 * HOUR)
    later = aws.scheduled_run()  # IAM writes a new report: two keys changed by hand, read and reported

    assert "steady" not in outcomes(soon)
    assert outcomes(later)["steady"] == "attention"
    assert f"its secret iam-key-rotation/steady holds key {held}, which is not an Active key" in later.output["users"][0]["detail"]


def test_a_key_deactivated_by_hand_that_the_report_does_not_show_is_seen_on_the_next_full_read(emulate):
    # IAM documents N/A for the date of a slot without an Active key: the report may not show an Inactive key. The
    # keys are read anyway on each day of the current key's age that is a multiple of FULL_READ_DAYS (5).
    aws = emulate(account_with(("app", [key(61, in_secret=True), key(130, "Inactive")])))
    old = next(k for k, status in keys("app").items() if status == "Inactive")

    aws.scheduled_run()  # day 61 of the current key: not seen
    assert not [t for t in account.tags_of("app") if t.startswith(decisions.INACTIVE_SINCE_TAG_PREFIX)]

    aws.advance(4)
    aws.scheduled_run()  # day 65: read, and its recovery window starts now
    assert account.tags_of("app")[decisions.inactive_since_tag(old)] == decisions.format_time(aws.schedule)


def test_across_an_organization_each_account_plans_from_its_own_report_or_without_one(emulate):
    from moto.iam.models import IAMBackend
    from test_organization import organization, user

    from emulator.faults import aws_error

    aws = emulate(organization(("payments", [user("steady", 11), user("calm", 12)], True), ("analytics", [user("steady", 11)], True)))
    payments, analytics = aws.member_accounts["payments"], aws.member_accounts["analytics"]
    generate = IAMBackend.generate_report

    def refused_in_analytics(backend):  # analytics' member stack is from before the hub read the report
        if backend.account_id == analytics:
            raise aws_error("iam", "AccessDenied")
        return generate(backend)

    with mock.patch.object(IAMBackend, "generate_report", refused_in_analytics), failing(
        "iam", "list_access_keys", "ServiceFailure", when=about_user("steady")
    ):
        run = aws.scheduled_run()

    # payments' steady, planned from its report, was not read; analytics' steady was read (and its read failed).
    by_account = {(u.get("account"), u["user"]): u["outcome"] for u in summary(run)["users"]}
    assert by_account == {(stack.ACCOUNT_ID, "hub-deployer"): "rotated", (analytics, "steady"): "failed"}
    assert (summary(run)["managedUsers"], summary(run)["unchangedUsers"]) == (4, 2)  # payments' two, from its report
    assert payments not in {a["account"] for a in run.unreachable_accounts}


# --- reading the report (reading.credential_report) on the emulator's IAM ------------------------------------


def test_the_report_is_read_once_iam_has_written_it_and_given_up_on_past_the_waits_or_the_deadline(monkeypatch):
    with moto_account(strict=True) as clock:
        iam().create_user(UserName="app")
        monkeypatch.setattr(reading, "pause", lambda seconds: clock.move_to_at_least(clock.now + timedelta(seconds=seconds)))
        assert set(reading.credential_report(iam())) == {"app"}  # STARTED, waited, COMPLETE, read

    with moto_account(strict=True):
        monkeypatch.setattr(reading, "pause", lambda seconds: None)  # IAM never finishes
        assert reading.credential_report(iam()) is None
    with moto_account(strict=True) as clock:
        monkeypatch.setattr(reading, "pause", lambda seconds: clock.move_to_at_least(clock.now + timedelta(seconds=seconds)))
        assert reading.credential_report(iam(), deadline=time.monotonic()) is None  # no time left to wait


def test_a_report_that_is_not_one_is_not_used():
    class Unreadable:
        def generate_credential_report(self):
            return {"State": "COMPLETE"}

        def get_credential_report(self):
            return {"Content": b"\xff\xfe not text", "GeneratedTime": None}

    assert reading.credential_report(Unreadable()) is None
