"""The names the workflow writes and reads: the secret version id that says which key a secret holds, its user tags
(inactive-since, the secret's name, and IAM's quota of tags), and what IAM, Secrets Manager and an owner's
address accept as names; with which users are managed and how a user's identity is compared.

Pure: no boto3, no clock, no environment. Part of the rules that ``decisions`` gathers; callers use
``decisions.SECRET_TAG`` and the like.
"""

from __future__ import annotations

import re
from datetime import datetime

from times import parse_time

# The state machine stores a new key as the secret version "key-rotation-<AccessKeyId>" (a ClientRequestToken
# of 32-64 characters), so the key a secret holds is known from DescribeSecret without reading the value.
# statemachine/rotation.asl.json builds the same string; tests/test_template.py checks both.
SECRET_VERSION_PREFIX = "key-rotation-"

# Every tag the workflow writes starts with this; its role may write no other (template.yaml).
WORKFLOW_TAG_PREFIX = "key-rotation:"
# IAM records no deactivation time, so the workflow keeps it as a user tag "<prefix><AccessKeyId>" whose
# value is the ISO time the key was deactivated (or first seen Inactive). The recovery window counts from it.
INACTIVE_SINCE_TAG_PREFIX = WORKFLOW_TAG_PREFIX + "inactive-since:"

# The user tag naming the secret the workflow last stored the user's key in, written after each store: it tells
# a secret deleted by hand from one that was never created.
SECRET_TAG = WORKFLOW_TAG_PREFIX + "secret"
# IAM allows this many tags per user; the workflow's own (SECRET_TAG, inactive-since tags) count against it.
MAX_TAGS_PER_USER = 50

# IAM user names: https://docs.aws.amazon.com/IAM/latest/APIReference/API_User.html. IAM compares them
# without regard to letter case: Alice and alice are one user.
USER_NAME_PATTERN = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
# Secrets Manager names take fewer characters than IAM user names (no ","): CreateSecret API reference.
SECRET_NAME_PATTERN = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# An owner's address, the value of the user's owner tag (reading.owner_of).
EMAIL_PATTERN = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")


def key_version_id(access_key_id: str) -> str:
    return SECRET_VERSION_PREFIX + access_key_id


def key_id_from_version_id(version_id: str) -> str | None:
    if version_id.startswith(SECRET_VERSION_PREFIX):
        return version_id[len(SECRET_VERSION_PREFIX) :]
    return None


def user_key(name: str) -> str:
    """A user's identity as IAM sees it: its name without regard to letter case."""
    return name.lower()


def secret_name_problem(name: str) -> str | None:
    """Why Secrets Manager would refuse ``name``, or None."""
    if SECRET_NAME_PATTERN.fullmatch(name):
        return None
    bad = sorted({c for c in name if not SECRET_NAME_PATTERN.fullmatch(c)}) or ["its length"]
    return (
        f"its secret would be named {name}, which Secrets Manager does not accept ({' '.join(map(repr, bad))}: a "
        "name takes letters, digits and /_+=.@- only), so no key is created for it: rename the user (aws iam "
        "update-user --new-user-name) or take it out of rotation"
    )


def inactive_since_tag(access_key_id: str) -> str:
    return INACTIVE_SINCE_TAG_PREFIX + access_key_id


def parse_inactive_since_tags(tags: dict[str, str]) -> dict[str, datetime]:
    """Key id -> deactivation time from a user's tags; a tag whose value is not a time is ignored."""
    found = {}
    for tag_key, value in tags.items():
        if tag_key.startswith(INACTIVE_SINCE_TAG_PREFIX):
            try:
                found[tag_key[len(INACTIVE_SINCE_TAG_PREFIX) :]] = parse_time(value)
            except ValueError:
                continue
    return found


def is_managed(path: str, tags: dict[str, str], user_path: str, tag_key: str, tag_value: str) -> bool:
    """A user is managed when it lies under ``user_path`` and, if ``tag_key`` is set, carries the tag."""
    if not path.startswith(user_path):
        return False
    return not tag_key or tags.get(tag_key) == tag_value
