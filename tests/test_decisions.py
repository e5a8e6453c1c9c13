"""The rotation rules of decisions.py, as tables: one row per situation, exact outcomes, no prose."""

from datetime import datetime, timedelta, timezone

import pytest

import decisions
from decisions import MISSING_SECRET, InvalidInput, Key, LastUse, Policy, Secret, decide

NOW = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
POLICY = Policy.from_days(90, 7, 7)  # the template's defaults: MaxKeyAge, InstallWindow, RecoveryWindow
SHORT = Policy.from_days(30, 2, 3)


def ago(days, hours=0):
    return NOW - timedelta(days=days, hours=hours)


def active(key_id, days, hours=0, used_hours_ago=None):
    """An Active key created ``days`` (and ``hours``) ago, last used ``used_hours_ago`` hours ago (None: never; its
    last use is read, as the planner reads it for a key due for deactivation)."""
    used = LastUse(None) if used_hours_ago is None else LastUse(NOW - timedelta(hours=used_hours_ago), "s3", "eu-west-1")
    return Key(key_id, True, ago(days, hours), last_use=used)


def inactive(key_id, days, since=None):
    """An Inactive key created ``days`` ago, with an inactive-since tag ``since`` days ago (None: untagged)."""
    return Key(key_id, False, ago(days), None if since is None else ago(since))


def holds(key_id, **flags):
    return Secret(exists=True, key_id=key_id, **flags)


FOREIGN = Secret(exists=True, foreign=True)


def want(outcome, *, rotate=False, previous=None, deactivate=None, delete=None, record=(), forget=()):
    return {
        "outcome": outcome,
        "rotate": rotate,
        "previous_key_id": previous,
        "deactivate_key_id": deactivate,
        "delete_key_id": delete,
        "record_inactive": {key_id: NOW for key_id in record},
        "forget_inactive": list(forget),
    }


def got(decision):
    return {field: getattr(decision, field) for field in want("x")}


UNCHANGED, BLOCKED, ATTENTION = want("unchanged"), want("blocked"), want("attention")


def case(case_id, keys, secret, expected, **options):
    return pytest.param(keys, secret, expected, options, id=case_id)


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

SECRET = "iam-key-rotation/alice"
DELETED_BY_HAND = Secret(name=SECRET, recorded=SECRET)  # the user's tag says the workflow stored a key there
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


def test_held_and_overdue_say_where_the_key_is_used_and_how_to_find_the_consumer():
    keys = [active("PREV", 90, used_hours_ago=2), active("CUR", 7)]
    reason = decide("alice", keys, holds("CUR", name=SECRET), NOW, POLICY).reason
    assert "previous key PREV is still in use (last used 2026-01-05T04:00:00Z (s3, eu-west-1))" in reason
    assert "AttributeKey=AccessKeyId,AttributeValue=PREV" in reason
    assert "until IAM reports no use of it for 24 hours" in reason
    assert "past MaxKeyAgeDays (90 days)" in reason and "KeyInUseAtMaxAge=Deactivate" in reason


@pytest.mark.parametrize("hours, accepted", [(3, False), (4, True), (24, True)])
def test_unused_hours_allow_for_iams_reporting_delay(hours, accepted):
    policy = Policy.from_days(90, 7, 7, unused_hours=hours)
    if accepted:
        policy.check()
    else:
        with pytest.raises(decisions.InvalidConfiguration, match="UnusedHours .3. must be at least 4"):
            policy.check()


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


# --- execution input -------------------------------------------------------------------------------

START = "2026-01-05T06:00:00Z"


@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param({"time": START}, (NOW, None, False, False, True), id="scheduled"),
        pytest.param({}, (NOW, None, False, False, True), id="no time: start time"),
        pytest.param({"time": "2026-01-05T08:00:00+02:00"}, (NOW, None, False, False, True), id="offset to UTC"),
        pytest.param({"users": ["alice"]}, (NOW, ("alice",), False, False, False), id="on demand"),
        pytest.param(
            {"time": START, "users": ["alice", "bob", "alice"], "force": True, "dryRun": True},
            (NOW, ("alice", "bob"), True, True, False),
            id="forced dry run, duplicates dropped",
        ),
        pytest.param({"force": False, "dryRun": False}, (NOW, None, False, False, True), id="explicit false flags"),
    ],
)
def test_parse_run_request(raw, expected):
    r = decisions.parse_run_request(raw, START)
    assert (r.time, r.users, r.force, r.dry_run, r.scheduled) == expected


@pytest.mark.parametrize(
    "raw, start, named",
    [
        pytest.param(["alice"], START, ["JSON object"], id="not an object"),
        pytest.param({"dry_run": True}, START, ["dry_run"], id="unknown field"),
        pytest.param({"time": "yesterday"}, START, ['"time"', "yesterday"], id="bad time"),
        pytest.param({"time": "2026-01-05T06:00:00"}, START, ['"time"'], id="time without zone"),
        pytest.param({}, None, ['"time"'], id="no time, no start time"),
        pytest.param({"force": True}, START, ['"force"', '"users"'], id="force without users"),
        pytest.param({"users": ["alice"], "force": "yes"}, START, ['"force"', "'yes'"], id="force not bool"),
        pytest.param({"dryRun": 1}, START, ['"dryRun"'], id="dryRun not bool"),
        pytest.param({"users": []}, START, ['"users"'], id="users empty"),
        pytest.param({"users": "alice"}, START, ['"users"'], id="users not a list"),
        pytest.param({"users": [7]}, START, ['"users"'], id="users not names"),
        pytest.param({"users": ["ok", "bad name!"]}, START, ['"users"', "'bad name!'"], id="invalid IAM name"),
        pytest.param(
            {"time": "x", "colour": 1, "dryRun": "no"}, START, ['"time"', "colour", '"dryRun"'], id="all problems at once"
        ),
        pytest.param(
            {"users": None, "force": True},
            START,
            ['"users"'],
            id="users null with force",
        ),
    ],
)
def test_parse_run_request_rejects(raw, start, named):
    with pytest.raises(InvalidInput) as error:
        decisions.parse_run_request(raw, start)
    assert [n for n in named if n not in str(error.value)] == []


# --- scope, times, tags, secret versions ------------------------------------------------------------


@pytest.mark.parametrize(
    "path, tags, scope, managed",
    [
        pytest.param("/", {}, ("/", "", ""), True, id="everyone"),
        pytest.param("/svc/app/", {}, ("/svc/", "", ""), True, id="under path"),
        pytest.param("/other/", {}, ("/svc/", "", ""), False, id="outside path"),
        pytest.param("/", {}, ("/svc/", "", ""), False, id="root outside path"),
        pytest.param("/svc/", {"rotate": "yes"}, ("/svc/", "rotate", "yes"), True, id="tagged"),
        pytest.param("/svc/", {"rotate": "no"}, ("/svc/", "rotate", "yes"), False, id="wrong tag value"),
        pytest.param("/svc/", {}, ("/svc/", "rotate", "yes"), False, id="tag missing"),
        pytest.param("/other/", {"rotate": "yes"}, ("/svc/", "rotate", "yes"), False, id="tagged, outside path"),
    ],
)
def test_is_managed(path, tags, scope, managed):
    assert decisions.is_managed(path, tags, *scope) is managed


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param("2026-01-05T06:00:00Z", NOW, id="Z"),
        pytest.param("2026-01-05T06:00:00z", NOW, id="lowercase z"),
        pytest.param("2026-01-05T07:30:00+01:30", NOW, id="offset"),
        pytest.param("2026-01-05T06:00Z", NOW, id="no seconds"),
    ],
)
def test_parse_time(value, expected):
    parsed = decisions.parse_time(value)
    assert (parsed, parsed.tzinfo) == (expected, timezone.utc)


@pytest.mark.parametrize(
    "value", ["2026-01-05T06:00:00", "2026-01-05", "soon", "2026-13-05T06:00:00Z", "", None, 1767592800]
)
def test_parse_time_rejects(value):
    with pytest.raises(ValueError):
        decisions.parse_time(value)


def test_parse_inactive_since_tags():
    tags = {
        decisions.inactive_since_tag("AKIA1"): "2026-01-01T00:00:00Z",
        decisions.inactive_since_tag("AKIA2"): "not a time",
        "team": "ops",
    }
    assert decisions.parse_inactive_since_tags(tags) == {"AKIA1": datetime(2026, 1, 1, tzinfo=timezone.utc)}


@pytest.mark.parametrize(
    "version_id, key_id",
    [
        pytest.param(decisions.key_version_id("AKIAEXAMPLE"), "AKIAEXAMPLE", id="written by the workflow"),
        pytest.param("0b1c2d3e-aaaa-bbbb-cccc-123456789012", None, id="foreign version"),
        pytest.param("rotation-AKIAEXAMPLE", None, id="near miss"),
    ],
)
def test_key_id_from_version_id(version_id, key_id):
    assert decisions.key_id_from_version_id(version_id) == key_id


@pytest.mark.parametrize(
    "days",
    [(24, 7, 7), (14, 7, 7), (10, 7, 7), (7, 7, 0)],
    ids=["rotated at 14d, equal to the windows", "inside the windows", "shorter", "install only"],
)
def test_a_max_key_age_inside_the_windows_is_refused(days):
    with pytest.raises(decisions.InvalidConfiguration, match="MaxKeyAgeDays"):
        Policy.from_days(*days).check()


def test_the_default_policy_is_accepted():
    POLICY.check()
    Policy.from_days(25, 7, 7).check()  # rotated at 15 days, after the predecessor's 14 days of windows


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


def test_a_user_name_with_a_trailing_newline_is_rejected():
    with pytest.raises(InvalidInput, match="not IAM user names"):
        decisions.parse_run_request({"users": ["app\n"]}, "2026-01-05T06:00:00Z")


# --- hand edits, odd names, quotas and replays ------------------------------------------------------------


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


def test_a_replay_in_the_past_records_when_it_really_acted():
    request = decisions.parse_run_request({"time": "2025-12-01T06:00:00Z"}, "2026-01-05T06:00:00.250Z")
    assert (request.time, request.recorded_at) == (NOW - timedelta(days=35), NOW)
    # Deactivating at the replayed time would back-date the recovery window by 35 days.
    decision = decide("alice", [active("PREV", 97), active("CUR", 7)], holds("CUR"), NOW, POLICY, recorded_at=NOW + timedelta(days=35))
    assert decision.record_inactive == {"PREV": NOW + timedelta(days=35)}


def test_a_future_time_within_the_skew_is_recorded_as_given():
    request = decisions.parse_run_request({"time": "2026-01-05T06:03:00Z"}, "2026-01-05T06:00:00Z")
    assert request.recorded_at == request.time == NOW + timedelta(minutes=3)


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00", "0000-01-01T00:00:00Z"])
def test_a_time_out_of_range_is_rejected_with_a_message(time):
    with pytest.raises(InvalidInput, match="out of range"):
        decisions.parse_run_request({"time": time}, START)


def test_users_named_twice_in_different_case_are_one_user():
    request = decisions.parse_run_request({"users": ["Alice", "bob", "alice", "BOB", "carol"]}, START)
    assert request.users == ("Alice", "bob", "carol")


def test_times_are_taken_to_iams_whole_second():
    request = decisions.parse_run_request({"users": ["alice"], "force": True}, "2026-01-05T06:00:00.750Z")
    assert request.time == NOW  # a key created at 06:00:00.200 reads 06:00:00: not older than the run
    assert decide("alice", [active("NEW", 0)], holds("NEW"), request.time, POLICY, force=True).outcome == "unchanged"


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


# --- per-user overrides by tag --------------------------------------------------------------------------------

EXEMPT = want("exempt")


def tagged(**tags):
    return {"tags": {k.replace("_", ""): v for k, v in tags.items()}}


OVERRIDES = [
    case("KeyRotationMaxAgeDays 60: rotated at 50 days", [active("CUR", 50)], holds("CUR"),
         want("rotate", rotate=True, previous="CUR"), **tagged(KeyRotationMaxAgeDays="60")),
    case("KeyRotationMaxAgeDays 60: 49 days not due", [active("CUR", 49)], holds("CUR"), UNCHANGED, **tagged(KeyRotationMaxAgeDays="60")),
    case("KeyRotationMaxAgeDays may not lengthen", [active("CUR", 50)], holds("CUR"), BLOCKED, **tagged(KeyRotationMaxAgeDays="120")),
    case("KeyRotationMaxAgeDays not a number", [active("CUR", 95)], holds("CUR"), BLOCKED, **tagged(KeyRotationMaxAgeDays="ninety")),
    case("KeyRotationMaxAgeDays inside the windows", [active("CUR", 5)], holds("CUR"), BLOCKED, **tagged(KeyRotationMaxAgeDays="20")),
    case("KeyRotationInstallWindowDays 14: previous kept Active at 7 days", [active("PREV", 80), active("CUR", 7)], holds("CUR"),
         UNCHANGED, **tagged(KeyRotationInstallWindowDays="14")),
    case("KeyRotationInstallWindowDays 14: rotated at 73 days, so the maximum age holds", [active("CUR", 73)], holds("CUR"),
         want("rotate", rotate=True, previous="CUR"), **tagged(KeyRotationInstallWindowDays="14")),
    case("KeyRotationInstallWindowDays may not shorten", [active("CUR", 5)], holds("CUR"), BLOCKED, **tagged(KeyRotationInstallWindowDays="3")),
    case("exempt until tomorrow: nothing is rotated", [active("CUR", 95)], holds("CUR"), EXEMPT,
         **tagged(KeyRotationExemptUntil="2026-01-06", KeyRotationExemptReason="vendor freeze")),
    case("exempt until today, inclusive", [active("CUR", 95)], holds("CUR"), EXEMPT,
         **tagged(KeyRotationExemptUntil="2026-01-05", KeyRotationExemptReason="vendor freeze")),
    case("exemption expired: rotated again", [active("CUR", 95)], holds("CUR"), want("rotate", rotate=True, previous="CUR"),
         **tagged(KeyRotationExemptUntil="2026-01-04", KeyRotationExemptReason="vendor freeze")),
    case("exemption expired, nothing due: reported", [active("CUR", 10)], holds("CUR"), ATTENTION,
         **tagged(KeyRotationExemptUntil="2026-01-04", KeyRotationExemptReason="vendor freeze")),
    case("exemption without a reason: blocked, never guessed", [active("CUR", 95)], holds("CUR"), BLOCKED,
         **tagged(KeyRotationExemptUntil="2026-01-06")),
    case("exemption without a date", [active("CUR", 95)], holds("CUR"), BLOCKED, **tagged(KeyRotationExemptReason="vendor freeze")),
    case("exemption past one rotation cycle", [active("CUR", 95)], holds("CUR"), BLOCKED,
         **tagged(KeyRotationExemptUntil="2026-06-01", KeyRotationExemptReason="vendor freeze")),
]


@pytest.mark.parametrize("keys, secret, expected, options", OVERRIDES)
def test_overrides_by_tag(keys, secret, expected, options):
    assert got(decide("alice", keys, secret, NOW, POLICY, tags=options["tags"])) == expected


def test_the_expired_exemption_and_invalid_tags_say_what_to_fix():
    expired = decide("alice", [active("CUR", 95)], holds("CUR"), NOW, POLICY,
                     tags={"KeyRotationExemptUntil": "2026-01-04", "KeyRotationExemptReason": "x"})
    assert "its exemption ended on 2026-01-04 (tag KeyRotationExemptUntil) and is ignored" in expired.reason
    lengthened = decide("alice", [active("CUR", 50)], holds("CUR"), NOW, POLICY, tags={"KeyRotationMaxAgeDays": "120"})
    assert "tag KeyRotationMaxAgeDays=120 would lengthen the stack's MaxKeyAgeDays (90); it may only shorten it" in lengthened.reason
    exempt = decide("alice", [active("CUR", 95)], holds("CUR"), NOW, POLICY,
                    tags={"KeyRotationExemptUntil": "2026-01-06", "KeyRotationExemptReason": "vendor freeze"})
    assert exempt.reason.startswith("exempt until 2026-01-06 (tag KeyRotationExemptUntil): vendor freeze")
