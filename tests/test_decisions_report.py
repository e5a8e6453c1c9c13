"""decisions.untouched_by_report: when IAM's credential report alone shows that a scheduled run has nothing to do for
a user, so its keys are not read; and parse_credential_report, which reads the report. A table per rule: every
row but the first is one reason the keys must be read after all."""

from dataclasses import replace
from datetime import timedelta

import pytest
from decision_tables import NOW, POLICY, ago

import decisions
from decisions import ReportedKey, ReportedUser, Secret

SECRET_NAME = "iam-key-rotation/app"
TAGS = {decisions.SECRET_TAG: SECRET_NAME}


def reported(*keys):
    return ReportedUser("app", tuple(ReportedKey(active, created) for active, created in keys))


def stored(days, **changes):
    """The secret as the workflow left it: it holds key AKIA1, stored when the key was made ``days`` ago."""
    return replace(Secret(exists=True, key_id="AKIA1", name=SECRET_NAME, recorded=SECRET_NAME, changed=ago(days)), **changes)


ONE_KEY_11_DAYS = reported((True, ago(11)))


# (case, what the report says, the secret, the user's tags, options, untouched?)
CASES = [
    ("one Active key, young, the one the workflow stored", ONE_KEY_11_DAYS, stored(11), TAGS, {}, True),
    # what the report shows of the keys
    ("not in the report (made after it)", None, stored(11), TAGS, {}, False),
    ("two keys in the report", reported((True, ago(11)), (True, ago(3))), stored(11), TAGS, {}, False),
    ("an Inactive key with a date beside it", reported((True, ago(11)), (False, ago(100))), stored(11), TAGS, {}, False),
    ("its only key is Inactive", reported((False, ago(11))), stored(11), TAGS, {}, False),
    ("no key at all", reported(), stored(11), TAGS, {}, False),
    ("an Active key the report gives no date", reported((True, None)), stored(11), TAGS, {}, False),
    # what it is due: decided as decide() would with that key
    ("rotation is due", reported((True, ago(81))), stored(81), TAGS, {}, False),
    ("rotation is due for this user's own maximum age (tag)", reported((True, ago(21))), stored(21),
     {**TAGS, decisions.MAX_AGE_TAG: "30"}, {}, False),
    ("an exemption that ended (the report says so)", ONE_KEY_11_DAYS, stored(11),
     {**TAGS, decisions.EXEMPT_UNTIL_TAG: "2026-01-01", decisions.EXEMPT_REASON_TAG: "audit"}, {}, False),
    ("a secret name Secrets Manager refuses", ONE_KEY_11_DAYS, stored(11, name="iam-key-rotation/a,b", recorded="iam-key-rotation/a,b"),
     {decisions.SECRET_TAG: "iam-key-rotation/a,b"}, {}, False),
    ("rotation is due within the owners' notice window", ONE_KEY_11_DAYS, stored(11), TAGS,
     {"policy": decisions.Policy.from_days(90, 7, 7, notice=75)}, False),
    ("exempt by tag", ONE_KEY_11_DAYS, stored(11), {**TAGS, decisions.EXEMPT_UNTIL_TAG: "2026-02-01", decisions.EXEMPT_REASON_TAG: "audit"}, {}, False),
    ("a broken override tag", ONE_KEY_11_DAYS, stored(11), {**TAGS, decisions.MAX_AGE_TAG: "soon"}, {}, False),
    ("an inactive-since tag: an Inactive key the report may not show", ONE_KEY_11_DAYS, stored(11),
     {**TAGS, decisions.inactive_since_tag("AKIA0"): decisions.format_time(ago(2))}, {}, False),
    ("the user's tag does not name the secret yet (a tag to write)", ONE_KEY_11_DAYS, stored(11, recorded=None), {}, {"tag_count": 1}, False),
    ("a day its key's age is a multiple of FULL_READ_DAYS: read anyway", reported((True, ago(10))), stored(10), TAGS, {}, False),
    ("10 days and 23 hours old: still day 10", reported((True, ago(10, hours=23))), stored(10, changed=ago(10, hours=23)),
     TAGS, {}, False),
    ("a key made today: read", reported((True, ago(0, hours=20))), stored(0, changed=ago(0, hours=20)), TAGS, {}, False),
    # what the secret says
    ("no secret", ONE_KEY_11_DAYS, Secret(name=SECRET_NAME), TAGS, {}, False),
    ("a secret written outside the workflow", ONE_KEY_11_DAYS, stored(11, key_id=None, foreign=True), TAGS, {}, False),
    ("a secret scheduled for deletion", ONE_KEY_11_DAYS, stored(11, scheduled_for_deletion=True), TAGS, {}, False),
    ("a secret with no LastChangedDate", ONE_KEY_11_DAYS, stored(11, changed=None), TAGS, {}, False),
    ("the key is newer than the secret's last change: made by hand after the store", reported((True, ago(6))), stored(11), TAGS, {}, False),
    ("the secret changed long after the key was stored", ONE_KEY_11_DAYS, stored(11, changed=ago(9)), TAGS, {}, False),
    ("the secret changed within STORE_WINDOW of the key: as the workflow stores it", ONE_KEY_11_DAYS,
     stored(11, changed=ago(11) + decisions.STORE_WINDOW), TAGS, {}, True),
    ("a key made 20 minutes before the one stored (a second rotation), which a person then deleted",
     ONE_KEY_11_DAYS, stored(11, changed=ago(11) + timedelta(minutes=20)), TAGS, {}, False),
    ("the secret changed after the report was written: a forced run stored a key made today",
     reported((True, ago(11))), stored(0), TAGS, {}, False),
]


@pytest.mark.parametrize("report, secret, tags, options, expected", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_untouched_by_report(report, secret, tags, options, expected):
    policy = options.get("policy", POLICY)
    tag_count = options.get("tag_count", len(tags))
    assert decisions.untouched_by_report("app", report, secret, tags, tag_count, NOW, policy) is expected


HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,"
    "mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,"
    "access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,"
    "cert_2_last_rotated"
)


def row(user, key1=("false", "N/A"), key2=("false", "N/A")):
    return f"{user},arn:aws:iam::123456789012:user/{user},2026-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false," \
        f"{key1[0]},{key1[1]},N/A,N/A,N/A,{key2[0]},{key2[1]},N/A,N/A,N/A,false,N/A,false,N/A"


def test_the_report_is_read_as_iam_writes_it():
    text = "\n".join([
        HEADER,
        "<root_account>,arn:aws:iam::123456789012:root,2026-01-01T00:00:00+00:00,not_supported,N/A,N/A,N/A,true,"
        "false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
        row("App", ("true", "2026-01-01T10:00:00+00:00")),
        row("two", ("true", "2025-10-01T00:00:00+00:00"), ("false", "2025-09-01T00:00:00+00:00")),
        row("none"),
        row("second-slot-only", key2=("true", "2026-01-02T00:00:00+00:00")),
        row("garbled", ("true", "yesterday")),
        row("victim,,,,,", ("true", "2026-01-03T00:00:00+00:00")),  # a comma in a name, written unquoted
        row("twice", ("true", "2026-01-03T00:00:00+00:00")),
        row("TWICE", ("true", "2026-01-03T00:00:00+00:00")),
        row("elsewhere").replace("user/elsewhere", "user/someone-else"),
        '"quoted,name","arn:aws:iam::123456789012:user/quoted,name",2026-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,'
        "true,2026-01-04T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A",
    ])

    users = decisions.parse_credential_report(text)

    # By user key. Left out: the root; a date that does not parse; a row whose fields do not match the header; a
    # name listed twice; an ARN that is not the row's user. A quoted name is read whole.
    assert set(users) == {"app", "two", "none", "second-slot-only", "quoted,name"}
    assert users["app"] == ReportedUser("App", (ReportedKey(True, decisions.parse_time("2026-01-01T10:00:00Z")),))
    assert [k.active for k in users["two"].keys] == [True, False]
    assert users["none"].keys == ()
    assert users["second-slot-only"].keys == (ReportedKey(True, decisions.parse_time("2026-01-02T00:00:00Z")),)
