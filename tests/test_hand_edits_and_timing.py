"""The eight situations in which the rotation once broke its own promises, each on the real template, state
machine and Lambdas in the emulator, as strict as AWS about time and names (see docs/reliability.md):

1. a key created in the same second as its state entered, then not stored, is still found and deleted;
2. a user named twice in different letter case is rotated once;
3. a secret overwritten by hand needs attention on every run, and nothing is retired;
4. a secret deleted by hand needs attention on every run, and nothing is retired;
5. a user that leaves scope with its rotation half done needs attention on every run;
6. a replay with a past "time" records when it really acted, so the recovery window stays whole;
7. a user name Secrets Manager cannot take is blocked before any key is created;
8. a time out of range is rejected with a message, and nothing changes.

The ``emulate`` fixture checks the invariants and scans for leaked secrets after every run.
"""

from __future__ import annotations

import json
from datetime import timedelta

import decisions
import pytest
from test_rotation_workflow import MANAGED, START, account_with, emulate, key, keys, outcomes, staged, summary  # noqa: F401

from emulator import account, stack
from emulator.faults import failing

OWNER = "owner@example.com"
OWNED = {**MANAGED, "KeyOwnerEmail": OWNER}
SECRET = "iam-key-rotation/app"


def iam():
    return stack.client("iam")


def secrets():
    return stack.client("secretsmanager")


def detail(run, user="app"):
    return next(u["detail"] for u in summary(run)["users"] if u["user"] == user)


def flat(text):
    return " ".join(text.split())


def team_email(run):
    (email,) = [e for e in run.emails if e.destinations != [OWNER]]
    return flat(email.body)


def owner_email(run):
    (email,) = [e for e in run.emails if e.destinations == [OWNER]]
    return flat(email.body)


def rotated_once(aws):
    """Day 0: app's 95-day-old key is rotated. Returns (old key, new key); both Active, the secret holds new."""
    (old,) = keys("app")
    assert outcomes(aws.scheduled_run()) == {"app": "rotated"}
    (new,) = set(keys("app")) - {old}
    return old, new


# --- 1. real timing ------------------------------------------------------------------------------------------


def test_a_key_created_in_the_second_its_state_entered_is_found_and_deleted_when_it_cannot_be_stored(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    (old,) = keys("app")

    with failing("secretsmanager", "put_secret_value", "InternalServiceError", runs_only=True):
        run = aws.scheduled_run()

    # The trap: the state that notes the time entered at hh:mm:ss.mmm, and IAM dated the key it then created to
    # the whole second, which reads as earlier.
    (reconcile,) = [json.loads(p)["Payload"] for p in run.lambda_payloads() if "ReconcileFunction" in p]
    since = reconcile["since"]
    assert since[19:] != ".000Z"
    created = next(e for e in run.all_events() if "createAccessKey" in json.dumps(e.get("taskSucceededEventDetails", {})))
    new_key = json.loads(created["taskSucceededEventDetails"]["output"])["AccessKey"]["AccessKeyId"]
    # Found, deleted and named, although IAM's date for it is before ``since``.
    assert keys("app") == {old: "Active"} and staged(aws, "app") == {"AWSCURRENT": old}
    assert (run.status, outcomes(run)) == ("FAILED", {"app": "failed"})
    assert f"The new key {new_key} was not stored, so it was deleted again" in team_email(run)


# --- 2. letter case ------------------------------------------------------------------------------------------


def test_a_user_named_twice_in_different_case_is_rotated_once(emulate):
    aws = emulate(account_with(("app", [key(30, in_secret=True)])))
    (old,) = keys("app")

    run = aws.start({"time": START, "users": ["app", "APP"], "force": True})

    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "rotated"})
    (new,) = set(keys("app")) - {old}
    assert keys("app") == {old: "Active", new: "Active"}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert run.states_entered().count("Create new access key") == 1


def test_a_user_renamed_in_case_keeps_the_secret_its_consumers_read(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    old, new = rotated_once(aws)
    iam().update_user(UserName="app", NewUserName="App")

    aws.advance(7)
    run = aws.scheduled_run()

    assert outcomes(run) == {"App": "retired"}
    assert keys("App") == {old: "Inactive", new: "Active"}
    assert staged(aws, "app") == {"AWSCURRENT": new, "AWSPREVIOUS": old}
    assert set(account.workflow_secrets("iam-key-rotation/")) == {SECRET}  # no second secret for the new spelling


# --- 3 and 4. secrets changed or deleted by hand ------------------------------------------------------------


def overwrite_with_another_users_key(aws):
    other = iam().create_access_key(UserName="other")["AccessKey"]
    value = {"Version": 1, "UserName": "other", "AccessKeyId": other["AccessKeyId"], "SecretAccessKey": other["SecretAccessKey"]}
    secrets().put_secret_value(SecretId=SECRET, SecretString=json.dumps(value))  # a version id of its own


def overwrite_with_text(aws):
    secrets().put_secret_value(SecretId=SECRET, SecretString="see the wiki")


@pytest.mark.parametrize("overwrite", [overwrite_with_another_users_key, overwrite_with_text], ids=["another-users-key", "not-json"])
def test_a_secret_overwritten_by_hand_needs_attention_every_run_and_nothing_is_retired(emulate, overwrite):
    aws = emulate(account_with(("app", [key(95, in_secret=True)], OWNED), ("other", [], {}, "/")))
    old, new = rotated_once(aws)
    overwrite(aws)

    for day in (7, 8):  # the install window is over: a healthy secret would have its older key retired
        aws.advance(day - 7 if day == 8 else 7)
        run = aws.scheduled_run()
        assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "attention"})
        assert keys("app") == {old: "Active", new: "Active"}
        for text in (detail(run), team_email(run), owner_email(run)):
            assert f"its secret {SECRET} was last written outside this workflow" in flat(text)
            assert f'deactivate whichever of {old} and {new} no consumer uses' in flat(text)
            assert 'run on demand with {"users": ["app"], "force": true}' in flat(text)
        assert run.output["attention"] == 1 and "1 need attention" in run.emails[0].subject

    # The fix, as the report gives it.
    iam().update_access_key(UserName="app", AccessKeyId=old, Status="Inactive")
    fixed = aws.start({"users": ["app"], "force": True})
    assert (fixed.status, outcomes(fixed)) == ("SUCCEEDED", {"app": "rotated"})
    assert account.secret_value(SECRET)["UserName"] == "app"


def test_a_secret_deleted_by_hand_needs_attention_every_run_and_nothing_is_retired(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)], OWNED)))
    old, new = rotated_once(aws)
    secrets().delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)

    for _ in range(2):
        aws.advance(7)
        run = aws.scheduled_run()
        assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "attention"})
        assert keys("app") == {old: "Active", new: "Active"}  # not left with two Active keys silently: reported
        for text in (detail(run), team_email(run), owner_email(run)):
            assert f"its secret {SECRET}, in which this workflow stored the user's key, no longer exists" in flat(text)

    iam().update_access_key(UserName="app", AccessKeyId=old, Status="Inactive")
    fixed = aws.start({"users": ["app"], "force": True})
    assert (fixed.status, outcomes(fixed)) == ("SUCCEEDED", {"app": "rotated"})
    assert staged(aws, "app")["AWSCURRENT"] not in (old, new)


def test_a_secret_stored_by_a_version_before_the_secret_tag_gets_the_tag_so_a_later_deletion_is_seen(emulate):
    aws = emulate(account_with(("app", [key(30, in_secret=True)])))
    iam().untag_user(UserName="app", TagKeys=[decisions.SECRET_TAG])  # as 0.1.0 left it

    aws.scheduled_run()
    assert account.tags_of("app")[decisions.SECRET_TAG] == SECRET
    secrets().delete_secret(SecretId=SECRET, ForceDeleteWithoutRecovery=True)
    aws.advance(1)
    assert outcomes(aws.scheduled_run()) == {"app": "attention"}


def test_a_secret_never_created_is_a_first_install_not_a_deletion(emulate):
    aws = emulate(account_with(("app", [key(30)])))
    run = aws.scheduled_run()
    assert outcomes(run) == {} and run.output["unchangedUsers"] == 1


# --- 5. users that leave scope -------------------------------------------------------------------------------


def untag(aws):
    iam().untag_user(UserName="app", TagKeys=["KeyRotation"])
    return "the user no longer carries the tag KeyRotation=enabled", lambda: iam().tag_user(UserName="app", Tags=[{"Key": "KeyRotation", "Value": "enabled"}])


def move(aws):
    iam().update_user(UserName="app", NewPath="/retired/")
    return "the user was moved to path /retired/, outside UserPath /services/", lambda: iam().update_user(UserName="app", NewPath="/services/")


@pytest.mark.parametrize("leave", [untag, move], ids=["untagged", "moved-off-the-path"])
def test_a_user_that_leaves_scope_in_its_install_window_needs_attention_every_run(emulate, leave):
    fixture = account_with(("app", [key(95, in_secret=True)], OWNED, "/services/"))
    aws = emulate(fixture, UserPath="/services/")
    old, new = rotated_once(aws)
    why, come_back = leave(aws)

    for _ in range(2):
        aws.advance(7)
        run = aws.scheduled_run()
        assert (run.status, outcomes(run), run.output["managedUsers"]) == ("SUCCEEDED", {"app": "attention"}, 0)
        assert keys("app") == {old: "Active", new: "Active"}
        for text in (detail(run), team_email(run), owner_email(run)):
            assert f"{why}, with its rotation unfinished" in flat(text)
            assert f"deactivate {old} once no consumer uses it" in flat(text)

    come_back()
    aws.advance(1)
    back = aws.scheduled_run()
    assert outcomes(back) == {"app": "retired"} and keys("app") == {old: "Inactive", new: "Active"}


def test_a_user_that_leaves_scope_with_nothing_unfinished_is_not_reported(emulate):
    aws = emulate(account_with(("app", [key(30, in_secret=True)])))
    untag(aws)
    run = aws.scheduled_run()
    assert outcomes(run) == {} and run.emails == []


def test_a_user_deleted_with_its_secret_left_behind_needs_attention(emulate):
    aws = emulate(account_with(("app", [key(30, in_secret=True)])))
    (held,) = keys("app")
    iam().delete_access_key(UserName="app", AccessKeyId=held)
    iam().untag_user(UserName="app", TagKeys=["KeyRotation", decisions.SECRET_TAG])
    iam().delete_user(UserName="app")

    run = aws.scheduled_run()

    assert outcomes(run) == {"app": "attention"}
    assert f"aws secretsmanager delete-secret --secret-id {SECRET}" in detail(run)


# --- 6. replays in the past ----------------------------------------------------------------------------------


def test_a_replay_with_a_past_time_records_when_it_really_acted(emulate):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    old, new = rotated_once(aws)
    day_7 = decisions.format_time(aws.schedule + timedelta(days=7))

    aws.advance(20)  # the runs of days 1-19 were missed; a person replays day 7's
    replay = aws.start({"time": day_7})
    assert outcomes(replay) == {"app": "retired"} and keys("app")[old] == "Inactive"
    recorded = account.tags_of("app")[decisions.inactive_since_tag(old)]
    assert recorded == decisions.format_time(aws.schedule)  # day 20, when it acted, not day 7

    same_day = aws.scheduled_run()  # minutes later: the key was deactivated today, it is not deleted
    assert outcomes(same_day) == {} and keys("app")[old] == "Inactive"
    aws.advance(7)
    assert outcomes(aws.scheduled_run()) == {"app": "retired"} and old not in keys("app")


# --- 7. names Secrets Manager cannot take --------------------------------------------------------------------


def test_a_user_name_secrets_manager_cannot_take_is_blocked_before_any_key_is_created(emulate):
    aws = emulate(account_with(("ci,deployer", [key(95)])))
    before = keys("ci,deployer")

    for _ in range(2):
        run = aws.scheduled_run()
        assert (run.status, outcomes(run)) == ("SUCCEEDED", {"ci,deployer": "blocked"})
        assert keys("ci,deployer") == before and "Create new access key" not in run.states_entered()
        assert "iam-key-rotation/ci,deployer, which Secrets Manager does not accept (','" in detail(run, "ci,deployer")
        aws.advance(1)


# --- 8. times out of range ------------------------------------------------------------------------------------


@pytest.mark.parametrize("time", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_out_of_range_is_rejected_with_a_message_and_nothing_changes(emulate, time):
    aws = emulate(account_with(("app", [key(95, in_secret=True)])))
    before = keys("app")

    run = aws.start({"time": time})

    assert (run.status, run.error) == ("FAILED", "InvalidInput")
    assert f'"time" must be an ISO-8601 UTC time such as "2026-01-01T00:00:00Z", got {time!r} (out of range)' in run.cause
    assert keys("app") == before


# --- IAM's quota of tags -------------------------------------------------------------------------------------


def test_a_user_without_room_for_the_workflows_tag_is_blocked_before_its_rotation(emulate):
    crowded = {**MANAGED, **{f"team-{i}": "x" for i in range(49)}}  # 50 tags
    aws = emulate(account_with(("app", [key(95)], crowded)))
    before = keys("app")

    run = aws.scheduled_run()

    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "blocked"})
    assert keys("app") == before
    assert "the user has 50 tags, IAM allows 50, and this run must add 1 to keep its records (key-rotation:secret)" in detail(run)
