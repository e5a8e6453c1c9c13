"""The policy decisions.py enforces and how a user's tags adjust it: the stack's parameters are refused when they
could let a key outlive MaxKeyAgeDays or act on stale last-use data, and the per-user tags (shorter maximum age,
longer install window, a dated and reasoned exemption) may only tighten it, each invalid tag named with its fix."""

import pytest
from decision_tables import ATTENTION, BLOCKED, NOW, POLICY, UNCHANGED, active, case, got, holds, want

import decisions
from decisions import Policy, decide

# --- the stack's policy --------------------------------------------------------------------------------------


@pytest.mark.parametrize("hours, accepted", [(3, False), (4, True), (24, True)])
def test_unused_hours_allow_for_iams_reporting_delay(hours, accepted):
    policy = Policy.from_days(90, 7, 7, unused_hours=hours)
    if accepted:
        policy.check()
    else:
        with pytest.raises(decisions.InvalidConfiguration, match="UnusedHours .3. must be at least 4"):
            policy.check()


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
