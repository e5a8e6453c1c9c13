"""Keys and secrets a person changes, on the real state machine, template and Lambda in the emulator: a key
re-activated after the run planned to delete it is kept (and the run fails), one deleted by hand meanwhile counts
as deleted; a key deactivated by hand gets its full recovery window from when a run first sees it, a re-activated
key loses its inactive-since tag, and a secret holding a deleted key needs attention until a rotation is forced.
(tests/test_hand_edits_and_timing.py has the hand edits of the reliability table.)

The ``emulate`` fixture (tests/test_rotation_workflow.py) checks the invariants and scans for leaked secrets after
every run."""

import decisions
from test_rotation_workflow import START, account_with, after_planning, emulate, iam, key, keys, outcomes, staged  # noqa: F401 (emulate is a fixture)

from emulator import account


# --- races with a person at work -----------------------------------------------------------------------------


def test_a_key_reactivated_after_the_plan_is_not_deleted(emulate):
    # Day 14 after a rotation: the old key is due for deletion, but a person re-activates it meanwhile.
    aws = emulate(account_with(("app", [key(14, in_secret=True), key(120, "Inactive", inactive_days_ago=7)])))
    current, old = sorted(keys("app"), key=lambda k: keys("app")[k])

    with after_planning(lambda: iam().update_access_key(UserName="app", AccessKeyId=old, Status="Active")):
        run = aws.scheduled_run()

    assert keys("app") == {current: "Active", old: "Active"}
    assert (run.status, outcomes(run)) == ("FAILED", {"app": "failed"})
    assert f"key {old} was re-activated after this run planned to delete it" in run.cause


def test_a_key_deleted_by_hand_after_the_plan_counts_as_deleted(emulate):
    aws = emulate(account_with(("app", [key(14, in_secret=True), key(120, "Inactive", inactive_days_ago=7)])))
    current, old = sorted(keys("app"), key=lambda k: keys("app")[k])

    with after_planning(lambda: iam().delete_access_key(UserName="app", AccessKeyId=old)):
        run = aws.scheduled_run()

    assert keys("app") == {current: "Active"}
    assert (run.status, outcomes(run)) == ("SUCCEEDED", {"app": "retired"})


# --- tags and stale secrets ----------------------------------------------------------------------------------


def test_a_key_deactivated_by_hand_gets_its_full_recovery_window_from_first_sight(emulate):
    aws = emulate(account_with(("app", [key(40, in_secret=True), key(130, "Inactive")])))
    current, old = sorted(keys("app"), key=lambda k: keys("app")[k])

    aws.scheduled_run()  # reads the keys: the current key is 40 days old, a multiple of decisions.FULL_READ_DAYS
    assert account.tags_of("app")[f"key-rotation:inactive-since:{old}"] == START
    aws.advance(6)
    aws.scheduled_run()
    assert old in keys("app")  # 6 days Inactive as far as anyone knows, although the current key is 46 days old
    aws.advance(1)
    aws.scheduled_run()
    assert old not in keys("app")


def test_a_reactivated_key_loses_its_inactive_since_tag(emulate):
    aws = emulate(account_with(("app", [key(3, in_secret=True), key(100, inactive_days_ago=20)])))

    run = aws.scheduled_run()

    assert not [t for t in account.tags_of("app") if t.startswith(decisions.INACTIVE_SINCE_TAG_PREFIX)]
    assert run.emails == []  # housekeeping is not news


def test_a_secret_holding_a_deleted_key_needs_attention_until_a_rotation_is_forced(emulate):
    aws = emulate(account_with(("app", [key(30, in_secret=True), key(10)])))
    held = staged(aws, "app")["AWSCURRENT"]
    iam().delete_access_key(UserName="app", AccessKeyId=held)
    before = keys("app")

    attention = aws.scheduled_run()
    assert keys("app") == before and outcomes(attention) == {"app": "attention"}
    detail = attention.output["users"][0]["detail"]
    assert f"its secret iam-key-rotation/app holds key {held}, which is not an Active key" in detail

    forced = aws.start({"time": START, "users": ["app"], "force": True})
    assert outcomes(forced) == {"app": "rotated"}
    assert staged(aws, "app")["AWSCURRENT"] in keys("app")
