"""The rotation rules of decisions.py, as tables: one row per situation, exact outcomes, no prose; the invariants
every row keeps, scheduled or forced; and which keys a failed create or store leaves to clean up.

Execution input and parsing: test_decisions_input.py; the policy and per-user overrides by tag:
test_decisions_policy.py; what a user needing attention is told: test_decisions_attention.py."""

from datetime import timedelta

import pytest
from decision_tables import (
    ATTENTION,
    BLOCKED,
    DELETED_BY_HAND,
    FOREIGN,
    NOW,
    POLICY,
    SECRET,
    SHORT,
    UNCHANGED,
    active,
    ago,
    case,
    got,
    holds,
    inactive,
    want,
)

import decisions
from decisions import MISSING_SECRET, Key, Policy, Secret, decide

ROTATION = [
    case("79d23h old: not yet", [active("CUR", 79, 23)], holds("CUR"), UNCHANGED),
    case("exactly 80d old: rotate, so that no Active key reaches 90d", [active("CUR", 80)], holds("CUR"), want("rotate", rotate=True, previous="CUR")),
    case("first rotation, no secret yet", [active("CUR", 90)], MISSING_SECRET, want("rotate", rotate=True, previous="CUR")),
    case("young key, no secret yet", [active("CUR", 30)], MISSING_SECRET, UNCHANGED),
    case("no keys, scheduled: none created", [], MISSING_SECRET, UNCHANGED),
    case("no keys, forced: first key", [], MISSING_SECRET, want("rotate", rotate=True), force=True),
    case("young key, forced", [active("CUR", 1)], holds("CUR"), want("rotate", rotate=True, previous="CUR"), force=True),
    case(
        "due, Inactive key deleted to make room",
        [active("CUR", 95), inactive("OLD", 200, since=100)],
        holds("CUR"),
        want("rotate", rotate=True, previous="CUR", delete="OLD", forget=["OLD"]),
    ),
    case(
        "due, make room ignores the recovery window",
        [active("CUR", 95), inactive("OLD", 200, since=1)],
        holds("CUR"),
        want("rotate", rotate=True, previous="CUR", delete="OLD", forget=["OLD"]),
    ),
    case("due, two Active keys: blocked", [active("OLD", 120), active("CUR", 100)], holds("CUR"), BLOCKED),
    case("forced, two Active keys: blocked", [active("OLD", 10), active("CUR", 3)], holds("CUR"), BLOCKED, force=True),
    case(
        "forced, two Inactive keys: oldest deleted",
        [inactive("X", 30), inactive("Y", 50, since=10)],
        MISSING_SECRET,
        want("rotate", rotate=True, delete="Y", forget=["Y"], record=["X"]),
        force=True,
    ),
    case(
        "forced, secret holds an Inactive key",
        [active("CUR", 20), inactive("OLD", 30, since=5)],
        holds("OLD"),
        want("rotate", rotate=True, previous="CUR", delete="OLD", forget=["OLD"]),
        force=True,
    ),
    case("due, secret holds a deleted key", [active("CUR", 95)], holds("GONE"), want("rotate", rotate=True, previous="CUR")),
    case("due, foreign secret", [active("CUR", 95)], FOREIGN, want("rotate", rotate=True, previous="CUR")),
    case("foreign secret: current is the newest Active key", [active("OLD", 100), active("NEW", 10)], FOREIGN, ATTENTION),
    case("no secret: current is the newest Active key", [active("OLD", 100), active("NEW", 10)], MISSING_SECRET, UNCHANGED),
    case("secret scheduled for deletion, due", [active("CUR", 100)], holds("CUR", scheduled_for_deletion=True), ATTENTION),
    case(
        "secret scheduled for deletion, forced",
        [active("CUR", 1)],
        holds("CUR", scheduled_for_deletion=True),
        ATTENTION,
        force=True,
    ),
]

RETIREMENT = [
    case("current 6d23h: previous stays Active", [active("PREV", 97), active("CUR", 6, 23)], holds("CUR"), UNCHANGED),
    case(
        "current 7d: previous deactivated",
        [active("PREV", 97), active("CUR", 7)],
        holds("CUR"),
        want("retire", deactivate="PREV", record=["PREV"]),
    ),
    case(
        "secret holds the older key: a newer hand-made key blocks, a consumer may use it",
        [active("CUR", 30), active("HAND", 2)],
        holds("CUR"),
        BLOCKED,
    ),
    case(
        "secret holds the newer key: the older one is deactivated",
        [active("OLD", 60), active("CUR", 30)],
        holds("CUR"),
        want("retire", deactivate="OLD", record=["OLD"]),
    ),
    case("secret with no current version: like a missing secret", [active("CUR", 30)], holds(None), UNCHANGED),
    case("foreign secret: nothing retired", [active("OLD", 40), active("NEW", 10)], FOREIGN, ATTENTION),
    case("no secret: nothing retired", [active("OLD", 40), active("NEW", 10)], MISSING_SECRET, UNCHANGED),
    case(
        "current 14d, previous still Active: deactivated, not deleted",
        [active("PREV", 104), active("CUR", 14)],
        holds("CUR"),
        want("retire", deactivate="PREV", record=["PREV"]),
    ),
    case("current 13d: Inactive key kept", [inactive("PREV", 103, since=7), active("CUR", 13)], holds("CUR"), UNCHANGED),
    case(
        "current 14d, inactive 7d: deleted",
        [inactive("PREV", 104, since=7), active("CUR", 14)],
        holds("CUR"),
        want("retire", delete="PREV", forget=["PREV"]),
    ),
    case("current 14d, inactive 6d: kept", [inactive("PREV", 104, since=6), active("CUR", 14)], holds("CUR"), UNCHANGED),
    case(
        "current 60d, untagged Inactive key: recorded, not deleted",
        [inactive("PREV", 150), active("CUR", 60)],
        holds("CUR"),
        want("record", record=["PREV"]),
    ),
    case(
        "current 3d, untagged Inactive key: recorded",
        [inactive("PREV", 93), active("CUR", 3)],
        holds("CUR"),
        want("record", record=["PREV"]),
    ),
    case("Inactive key only, no secret", [inactive("X", 200, since=30)], MISSING_SECRET, UNCHANGED),
    case("stale: secret holds a deleted key", [active("CUR", 10)], holds("GONE"), ATTENTION),
    case("stale: secret holds its only key, Inactive", [inactive("CUR", 30, since=1)], holds("CUR"), ATTENTION),
    case(
        "stale: secret holds an Inactive key",
        [active("NEW", 10), inactive("OLD", 40, since=3)],
        holds("OLD"),
        ATTENTION,
    ),
    case(
        "stale, untagged Inactive key: attention leaves even tags alone",
        [active("NEW", 10), inactive("OLD", 40)],
        holds("OLD"),
        ATTENTION,
    ),
]

HELD, OVERDUE = want("held"), want("overdue")
COMPLIANCE = Policy(POLICY.max_key_age, POLICY.install_window, POLICY.recovery_window, deactivate_in_use_at_max_age=True)

# UnusedHours 24 (the default): the previous key is deactivated only after IAM reported no use of it for 24 hours.
LAST_USE = [
    case("previous key used 3h ago: held", [active("PREV", 87, used_hours_ago=3), active("CUR", 7)], holds("CUR"), HELD),
    case("used 23h ago: held", [active("PREV", 87, used_hours_ago=23), active("CUR", 7)], holds("CUR"), HELD),
    case(
        "used 24h ago: deactivated",
        [active("PREV", 87, used_hours_ago=24), active("CUR", 7)],
        holds("CUR"),
        want("retire", deactivate="PREV", record=["PREV"]),
    ),
    case(
        "used before the rotation only: deactivated",
        [active("PREV", 87, used_hours_ago=8 * 24), active("CUR", 7)],
        holds("CUR"),
        want("retire", deactivate="PREV", record=["PREV"]),
    ),
    case("in use at 89d: held", [active("PREV", 89, used_hours_ago=1), active("CUR", 7)], holds("CUR"), HELD),
    case("in use at 90d: overdue, kept Active (Keep)", [active("PREV", 90, used_hours_ago=1), active("CUR", 7)], holds("CUR"), OVERDUE),
    case(
        "in use at 90d, KeyInUseAtMaxAge=Deactivate: deactivated",
        [active("PREV", 90, used_hours_ago=1), active("CUR", 7)],
        holds("CUR"),
        want("retire", deactivate="PREV", record=["PREV"]),
        policy=COMPLIANCE,
    ),
    case(
        "in use at 89d, KeyInUseAtMaxAge=Deactivate: still held",
        [active("PREV", 89, used_hours_ago=1), active("CUR", 7)],
        holds("CUR"),
        HELD,
        policy=COMPLIANCE,
    ),
    case(
        "held, with an untagged Inactive key too: nothing changes, tags included",
        [active("PREV", 87, used_hours_ago=1), active("CUR", 7)],
        holds("CUR"),
        HELD,
        obsolete_tags=("GONE",),
    ),
    case("the current key's use never holds anything", [active("PREV", 97), active("CUR", 7, used_hours_ago=0)], holds("CUR"),
         want("retire", deactivate="PREV", record=["PREV"])),
]

CUSTOM_POLICY = [
    case("30d policy: 24d not due", [active("CUR", 24)], holds("CUR"), UNCHANGED, policy=SHORT),
    case("30d policy: 25d due", [active("CUR", 25)], holds("CUR"), want("rotate", rotate=True, previous="CUR"), policy=SHORT),
    case("2d install: 1d23h", [active("P", 40), active("CUR", 1, 23)], holds("CUR"), UNCHANGED, policy=SHORT),
    case(
        "2d install: 2d",
        [active("P", 40), active("CUR", 2)],
        holds("CUR"),
        want("retire", deactivate="P", record=["P"]),
        policy=SHORT,
    ),
    case("2+3d: current 4d", [inactive("P", 40, since=3), active("CUR", 4)], holds("CUR"), UNCHANGED, policy=SHORT),
    case(
        "2+3d: current 5d, inactive 3d",
        [inactive("P", 40, since=3), active("CUR", 5)],
        holds("CUR"),
        want("retire", delete="P", forget=["P"]),
        policy=SHORT,
    ),
    case("2+3d: inactive 2d", [inactive("P", 40, since=2), active("CUR", 5)], holds("CUR"), UNCHANGED, policy=SHORT),
]

OBSOLETE_TAGS = [
    case("unchanged user: tag forgotten", [active("CUR", 3)], holds("CUR"), want("record", forget=["X"]), obsolete_tags=("X",)),
    case(
        "re-deactivated key: tag rewritten, not forgotten",
        [active("PREV", 97), active("CUR", 7)],
        holds("CUR"),
        want("retire", deactivate="PREV", record=["PREV"]),
        obsolete_tags=("PREV",),
    ),
    case(
        "deletion: both tags forgotten once",
        [inactive("PREV", 104, since=7), active("CUR", 14)],
        holds("CUR"),
        want("retire", delete="PREV", forget=["PREV", "GONE"]),
        obsolete_tags=("PREV", "GONE"),
    ),
    case(
        "rotation: tag forgotten",
        [active("CUR", 90)],
        holds("CUR"),
        want("rotate", rotate=True, previous="CUR", forget=["X"]),
        obsolete_tags=("X",),
    ),
]

HAND_EDITS = [
    case("secret deleted by hand, two Active keys", [active("OLD", 93), active("CUR", 3)], DELETED_BY_HAND, ATTENTION),
    case("secret deleted by hand, one key", [active("CUR", 30)], DELETED_BY_HAND, ATTENTION),
    case(
        "secret deleted by hand, due: the rotation stores it again",
        [active("CUR", 95)],
        DELETED_BY_HAND,
        want("rotate", rotate=True, previous="CUR"),
    ),
    case("secret deleted by hand, forced, two Active keys", [active("OLD", 93), active("CUR", 3)], DELETED_BY_HAND, BLOCKED, force=True),
    case("never stored: a missing secret is a first install", [active("CUR", 30)], Secret(name=SECRET), UNCHANGED),
    case(
        "secret prefix changed: the recorded secret is elsewhere",
        [active("CUR", 30)],
        Secret(name=SECRET, recorded="old-prefix/alice"),
        ATTENTION,
    ),
    case("user name Secrets Manager refuses", [active("CUR", 95)], Secret(name="iam-key-rotation/a,b"), BLOCKED),
    case("user name Secrets Manager refuses, forced", [], Secret(name="iam-key-rotation/a,b"), BLOCKED, force=True),
]

ALL_CASES = ROTATION + RETIREMENT + LAST_USE + CUSTOM_POLICY + OBSOLETE_TAGS + HAND_EDITS


@pytest.mark.parametrize("keys, secret, expected, options", ALL_CASES)
def test_decide(keys, secret, expected, options):
    assert got(decide("alice", keys, secret, NOW, **{"policy": POLICY, **options})) == expected


def test_a_key_is_never_deactivated_before_its_last_use_is_read():
    unread = Key("PREV", True, ago(97))  # last_use None: the planner has not read it
    decision = decide("alice", [unread, active("CUR", 7)], holds("CUR"), NOW, POLICY)
    assert (decision.read_last_use, decision.deactivate_key_id, decision.has_actions) == ("PREV", None, False)


def test_two_active_keys_blocked_changes_nothing_even_with_an_obsolete_tag():
    keys = [active("OLD", 120), active("CUR", 100)]  # OLD was Inactive (tagged), then re-activated by hand
    decision = decide("alice", keys, holds("CUR"), NOW, POLICY, obsolete_tags=("OLD",))
    assert (decision.outcome, decision.has_actions) == ("blocked", False)


def current_key(keys, secret):
    """The contract's current key: the Active key the secret holds, else the newest Active key."""
    actives = sorted((k for k in keys if k.active), key=lambda k: k.created)
    held = [k for k in actives if k.id == secret.key_id]
    return (held or actives[-1:] or [None])[0]


@pytest.mark.parametrize("force", [False, True], ids=["scheduled", "forced"])
@pytest.mark.parametrize("keys, secret, expected, options", ALL_CASES)
def test_invariants(keys, secret, expected, options, force):
    policy = options.get("policy", POLICY)
    d = decide("alice", keys, secret, NOW, policy, force=force, obsolete_tags=options.get("obsolete_tags", ()))
    by_id = {k.id: k for k in keys}
    current = current_key(keys, secret)
    assert d.delete_key_id is None or not by_id[d.delete_key_id].active, "an Active key is never deleted"
    if d.deactivate_key_id:
        assert by_id[d.deactivate_key_id].active and by_id[d.deactivate_key_id] is not current
    assert not (d.rotate and d.deactivate_key_id), "rotation and deactivation never share a run"
    if d.delete_key_id and not d.rotate:  # deleted for age: the recovery window has passed since deactivation
        assert NOW - by_id[d.delete_key_id].inactive_since >= policy.recovery_window
    if d.rotate:
        assert d.previous_key_id == (current.id if current else None)
    if d.outcome in decisions.UNCHANGED_OUTCOMES:
        assert not d.has_actions, "blocked, attention, held and overdue change nothing, tags included"
    else:
        assert (d.outcome == "unchanged") == (not d.has_actions)
    assert set(d.record_inactive) <= {k.id for k in keys if not k.active} | {d.deactivate_key_id}
    assert set(d.record_inactive.values()) <= {NOW}
    assert not set(d.record_inactive) & set(d.forget_inactive)


# --- after a failed create or store --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, secret_key, expected",
    [
        ([active("OLD", 95)], None, (None, [])),
        ([active("OLD", 95), active("NEW", 0)], None, (None, ["NEW"])),
        ([active("OLD", 95), active("NEW", 0)], "NEW", ("NEW", [])),
        ([active("OLD", 95), active("NEW", 0)], "OLD", (None, ["NEW"])),
        ([active("OLD", 95), active("HAND", 3)], None, (None, [])),
    ],
    ids=["nothing created", "created, not stored", "stored after all", "secret still on the old key", "older unknown key kept"],
)
def test_keys_to_clean_up_after_a_failed_create_or_store(keys, secret_key, expected):
    known = {"OLD"}
    secret = holds(secret_key) if secret_key else MISSING_SECRET
    assert decisions.keys_to_clean_up(known, keys, secret, since=NOW - timedelta(minutes=5)) == expected


def test_a_key_created_in_the_second_the_create_began_is_this_runs():
    # The state was entered at 06:00:00.600; IAM reports the key it then created at 06:00:00, to the second.
    entered = NOW + timedelta(milliseconds=600)
    created_that_second = Key("NEW", True, NOW)
    earlier = Key("HAND", True, NOW - timedelta(seconds=1))
    assert decisions.keys_to_clean_up({"OLD"}, [active("OLD", 95), earlier, created_that_second], MISSING_SECRET, since=entered) == (
        None,
        ["NEW"],
    )
