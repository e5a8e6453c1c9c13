"""What the model (emulator/model.py) draws its examples from: the accounts it starts with, the steps it may take,
the calls that may fail."""

from __future__ import annotations

from hypothesis import strategies as st

START = "2026-01-05T06:00:00Z"
# Short windows, so that a few dozen steps see whole lifecycles: rotate, install, deactivate, recover, delete.
PARAMETERS = {
    "MaxKeyAgeDays": "20", "InstallWindowDays": "3", "RecoveryWindowDays": "3", "NoticeDays": "2",
    "SenderEmail": "rotation@example.com", "NotificationEmails": "team@example.com",
    "ParallelUsers": "1",  # one user at a time: a replayed example then makes the same calls in the same order
}
SCOPE_TAG = {"KeyRotation": "enabled"}
OWNER_TAG = {"KeyOwnerEmail": "owner@example.com"}

# One AWS call that fails during a run: (service, moto backend method, error code, took effect first).
FAULTS = [
    ("iam", "create_access_key", "ServiceFailure", False),
    ("iam", "create_access_key", "ServiceFailure", True),
    ("secretsmanager", "put_secret_value", "InternalServiceError", False),
    ("secretsmanager", "put_secret_value", "InternalServiceError", True),
    ("secretsmanager", "create_secret", "InternalServiceError", False),
    ("iam", "update_access_key", "ServiceFailure", False),
    ("iam", "delete_access_key", "ServiceFailure", False),
    ("iam", "tag_user", "ServiceFailure", False),
    ("iam", "untag_user", "Throttling", False),
    ("iam", "list_access_keys", "Throttling", False),
    ("secretsmanager", "list_secrets", "InternalServiceError", False),
    ("sts", "get_caller_identity", "InvalidClientTokenId", False),
    ("lambda", "invoke", "ServiceException", False),
    ("ses", "send_email", "Throttling", False),
]

# A user as first seeded: its keys' (age in days, status, held by its secret).
KEY_SHAPES = st.sampled_from(
    [
        [],
        [(0, "Active", True)],
        [(1, "Active", False)],
        [(2, "Active", True), (1, "Inactive", False)],
        [(3, "Active", True), (4, "Active", False)],
        [(5, "Active", False), (6, "Active", False)],
    ]
)
AGES = st.integers(min_value=0, max_value=40)
DAYS = st.sampled_from([0, 1, 2, 3, 5, 8])
# How often each kind of step comes up: a real account sees mostly scheduled runs, and people rarely delete users.
RUNS = ["scheduled_run"] * 4 + ["forced_run", "dry_run", "run_with_a_failing_call", "run_with_a_failing_call", "two_runs_at_once"]
EDITS = [
    "set_a_key_status", "create_a_key", "set_a_key_status", "delete_a_key", "overwrite_a_secret", "delete_a_secret",
    "tag_or_untag_a_user", "move_a_user", "rename_a_user_in_case", "onboard_a_user", "delete_a_user",
]


@st.composite
def users(draw) -> list[dict]:
    """Three managed users and one out of scope, with keys of any shape and age."""
    users = []
    for name in ("app", "ci", "etl", "other"):
        shape = draw(KEY_SHAPES)
        ages = sorted(draw(st.lists(AGES, min_size=len(shape), max_size=len(shape), unique=True)), reverse=True)
        keys = [
            {"ageDays": age, "status": status, "inSecret": held}
            for age, (_, status, held) in zip(ages, shape)
        ]
        if len([k for k in keys if k["inSecret"]]) > 1:
            keys = [{**k, "inSecret": k is keys[-1]} for k in keys]
        tags = {} if name == "other" else {**SCOPE_TAG, **(OWNER_TAG if draw(st.booleans()) else {})}
        users.append({"name": name, "tags": tags, "keys": keys})
    return users


@st.composite
def accounts(draw) -> dict:
    """One account: the hub's, managing itself."""
    return {"start": START, "parameters": PARAMETERS, "verifiedEmails": ["rotation@example.com"], "users": draw(users())}


@st.composite
def organizations(draw) -> dict:
    """A hub managing its organization (TargetAccounts ORGANIZATION): its own users, a member account's with the
    member stack, and sometimes a member account without it (every run reports it and ends FAILED)."""
    members = [{"name": "payments", "users": draw(users())}]
    if draw(st.booleans()):
        members.append({"name": "sandbox", "users": draw(users()), "memberStack": False})
    return {
        **draw(accounts()),
        "parameters": {**PARAMETERS, "TargetAccounts": "ORGANIZATION"},
        "organization": {"hubMemberStack": True, "accounts": members},
    }
