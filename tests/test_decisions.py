"""The rotation rules of decisions.py, as tables: one row per situation, exact outcomes, no prose."""

from datetime import datetime, timedelta, timezone

import pytest

import decisions
from decisions import MISSING_SECRET, InvalidInput, Key, Policy, Secret, decide

NOW = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
POLICY = Policy.from_days(90, 7, 7)  # the template's defaults: MaxKeyAge, InstallWindow, RecoveryWindow
SHORT = Policy.from_days(30, 2, 3)


def ago(days, hours=0):
    return NOW - timedelta(days=days, hours=hours)


def active(key_id, days, hours=0):
    return Key(key_id, True, ago(days, hours))


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


UNCHANGED, BLOCKED = want("unchanged"), want("blocked")


def case(case_id, keys, secret, expected, **options):
    return pytest.param(keys, secret, expected, options, id=case_id)


ROTATION = [
    case("89d23h old: not yet", [active("CUR", 89, 23)], holds("CUR"), UNCHANGED),
    case("exactly 90d old: rotate", [active("CUR", 90)], holds("CUR"), want("rotate", rotate=True, previous="CUR")),
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
    case("foreign secret: current is the newest Active key", [active("OLD", 100), active("NEW", 10)], FOREIGN, UNCHANGED),
    case("no secret: current is the newest Active key", [active("OLD", 100), active("NEW", 10)], MISSING_SECRET, UNCHANGED),
    case("secret scheduled for deletion, due", [active("CUR", 100)], holds("CUR", scheduled_for_deletion=True), BLOCKED),
    case(
        "secret scheduled for deletion, forced",
        [active("CUR", 1)],
        holds("CUR", scheduled_for_deletion=True),
        BLOCKED,
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
    case("foreign secret: nothing retired", [active("OLD", 40), active("NEW", 10)], FOREIGN, UNCHANGED),
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
    case("stale: secret holds a deleted key", [active("CUR", 10)], holds("GONE"), BLOCKED),
    case("stale: secret holds its only key, Inactive", [inactive("CUR", 30, since=1)], holds("CUR"), BLOCKED),
    case(
        "stale: secret holds an Inactive key",
        [active("NEW", 10), inactive("OLD", 40, since=3)],
        holds("OLD"),
        BLOCKED,
    ),
    case(
        "stale, untagged Inactive key: blocked leaves even tags alone",
        [active("NEW", 10), inactive("OLD", 40)],
        holds("OLD"),
        BLOCKED,
    ),
]

CUSTOM_POLICY = [
    case("30d policy: 29d not due", [active("CUR", 29)], holds("CUR"), UNCHANGED, policy=SHORT),
    case("30d policy: 30d due", [active("CUR", 30)], holds("CUR"), want("rotate", rotate=True, previous="CUR"), policy=SHORT),
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

ALL_CASES = ROTATION + RETIREMENT + CUSTOM_POLICY + OBSOLETE_TAGS


@pytest.mark.parametrize("keys, secret, expected, options", ALL_CASES)
def test_decide(keys, secret, expected, options):
    assert got(decide("alice", keys, secret, NOW, **{"policy": POLICY, **options})) == expected


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
    if d.outcome == "blocked":
        assert (d.rotate, d.deactivate_key_id, d.delete_key_id) == (False, None, None)
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


@pytest.mark.parametrize("days", [(14, 7, 7), (10, 7, 7), (7, 7, 0)], ids=["equal to the windows", "shorter", "install only"])
def test_a_max_key_age_inside_the_windows_is_refused(days):
    with pytest.raises(decisions.InvalidConfiguration, match="MaxKeyAgeDays"):
        Policy.from_days(*days).check()


def test_the_default_policy_is_accepted():
    POLICY.check()
    Policy.from_days(15, 7, 7).check()


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

