"""The execution input decisions.py accepts and refuses (parse_run_request: times, users, flags, replays), and
the parsing around it: times, the scope a user is managed by, inactive-since tags and secret version ids."""

from datetime import datetime, timedelta, timezone

import pytest
from decision_tables import NOW, POLICY, active, holds

import decisions
from decisions import InvalidInput, decide

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


def test_a_user_name_with_a_trailing_newline_is_rejected():
    with pytest.raises(InvalidInput, match="not IAM user names"):
        decisions.parse_run_request({"users": ["app\n"]}, "2026-01-05T06:00:00Z")


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
