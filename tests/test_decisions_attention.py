"""What decisions.py tells a person, and that it changes nothing it cannot safely change: a key held or overdue
names where it is used; a hand-edited, foreign, deleted or doomed secret, a name Secrets Manager refuses and a
user at IAM's 50 tags each get the exact fix; a user that left rotation half done is reported; a secret stored
before the secret tag existed gets it recorded."""

import pytest
from decision_tables import DELETED_BY_HAND, NOW, POLICY, SECRET, active, holds, inactive

import decisions
from decisions import Secret, decide

# --- a key held or overdue -----------------------------------------------------------------------------------


def test_held_and_overdue_say_where_the_key_is_used_and_how_to_find_the_consumer():
    keys = [active("PREV", 90, used_hours_ago=2), active("CUR", 7)]
    reason = decide("alice", keys, holds("CUR", name=SECRET), NOW, POLICY).reason
    assert "previous key PREV is still in use (last used 2026-01-05T04:00:00Z (s3, eu-west-1))" in reason
    assert "AttributeKey=AccessKeyId,AttributeValue=PREV" in reason
    assert "until IAM reports no use of it for 24 hours" in reason
    assert "past MaxKeyAgeDays (90 days)" in reason and "KeyInUseAtMaxAge=Deactivate" in reason


# --- hand edits, odd names and quotas ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret, says",
    [
        (holds("GONE", name=SECRET), ["holds key GONE, which is not an Active key", "--access-key-id GONE --status Active"]),
        (Secret(exists=True, foreign=True, name=SECRET), ["was last written outside this workflow", "key-rotation-<key id>"]),
        (DELETED_BY_HAND, [f"its secret {SECRET}, in which this workflow stored the user's key, no longer exists"]),
        (holds("CUR", scheduled_for_deletion=True, name=SECRET), [f"aws secretsmanager restore-secret --secret-id {SECRET}"]),
    ],
    ids=["stale", "foreign", "deleted", "scheduled for deletion"],
)
def test_attention_says_what_happened_and_the_exact_fix(secret, says):
    decision = decide("alice", [active("OLD", 93), active("CUR", 3)], secret, NOW, POLICY)
    assert decision.outcome == "attention"
    assert all(text in decision.reason for text in says), decision.reason
    if not secret.scheduled_for_deletion:  # the fix: a fresh key, after freeing a slot where IAM's two are taken
        assert "deactivate whichever of OLD and CUR no consumer uses" in decision.reason
        assert 'run on demand with {"users": ["alice"], "force": true}' in decision.reason


def test_a_name_secrets_manager_refuses_is_named_with_its_fix():
    decision = decide("a,b", [active("CUR", 95)], Secret(name="iam-key-rotation/a,b"), NOW, POLICY)
    assert decision.outcome == "blocked" and not decision.has_actions
    assert "iam-key-rotation/a,b, which Secrets Manager does not accept (',':" in decision.reason
    assert "aws iam update-user --new-user-name" in decision.reason


@pytest.mark.parametrize(
    "tags_held, keys, expected",
    [
        (48, [active("PREV", 97), active("CUR", 7)], "retire"),  # one inactive-since tag: 49
        (49, [active("PREV", 97), active("CUR", 7)], "retire"),  # 50: just fits
        (50, [active("PREV", 97), active("CUR", 7)], "blocked"),  # 51
        (49, [active("CUR", 95)], "rotate"),  # the secret tag: 50
        (50, [active("CUR", 95)], "blocked"),
        (49, [inactive("OLD", 120), active("CUR", 95)], "rotate"),  # makes room: no inactive-since tag to write
    ],
)
def test_the_tags_a_run_writes_fit_within_iams_50(tags_held, keys, expected):
    decision = decide("alice", keys, holds("CUR"), NOW, POLICY, tags={}, tag_count=tags_held)
    assert decision.outcome == expected
    if expected == "blocked":
        assert not decision.has_actions
        assert f"the user has {tags_held} tags, IAM allows 50" in decision.reason and "aws iam untag-user" in decision.reason


def test_a_tag_the_user_already_has_needs_no_room():
    tags = {decisions.SECRET_TAG: "iam-key-rotation/alice"}  # and 49 others
    assert decide("alice", [active("CUR", 95)], holds("CUR"), NOW, POLICY, tags=tags, tag_count=50).outcome == "rotate"


# --- a user that left rotation, and the secret tag -----------------------------------------------------------


def left(secret_key, *keys, why="the user no longer carries the tag KeyRotation=enabled"):
    return decisions.left_rotation("alice", list(keys) if keys != (None,) else None, holds(secret_key, name=SECRET), why)


@pytest.mark.parametrize(
    "decision, says",
    [
        (left("CUR", active("CUR", 30)), None),  # steady: its one key is in the secret
        (left("CUR", active("OLD", 93), active("CUR", 3)), "deactivate OLD once no consumer uses it"),
        (left("CUR", inactive("OLD", 100, since=3), active("CUR", 10)), "delete OLD once you no longer need it"),
        (left("CUR", inactive("CUR", 30)), "re-activate CUR or store a working key"),
        (left("CUR", None, why="the user no longer exists"), f"aws secretsmanager delete-secret --secret-id {SECRET}"),
    ],
    ids=["steady", "install window", "recovery window", "secret key Inactive", "user deleted"],
)
def test_a_user_that_left_rotation_half_done_needs_attention(decision, says):
    if says is None:
        assert decision is None
    else:
        assert (decision.outcome, decision.has_actions) == ("attention", False)
        assert says in decision.reason and decision.reason.startswith("the user no longer")


def test_a_secret_the_workflow_did_not_write_or_that_is_on_its_way_out_is_not_its_concern():
    assert decisions.left_rotation("alice", [active("A", 1), active("B", 2)], Secret(exists=True, foreign=True, name=SECRET), "gone") is None
    assert decisions.left_rotation("alice", None, holds("A", scheduled_for_deletion=True, name=SECRET), "gone") is None


def test_a_secret_stored_before_the_secret_tag_existed_gets_it_recorded():
    secret = holds("CUR", name=SECRET)  # healthy, and the user carries no key-rotation:secret tag yet
    decision = decide("alice", [active("CUR", 30)], secret, NOW, POLICY, tags={}, tag_count=0)
    assert (decision.outcome, decision.record_secret) == ("record", SECRET)
    assert decision.reason == f"the user's tag key-rotation:secret now names {SECRET}"
    recorded = holds("CUR", name=SECRET, recorded=SECRET)
    assert decide("alice", [active("CUR", 30)], recorded, NOW, POLICY).outcome == "unchanged"
