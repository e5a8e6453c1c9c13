"""The emulator's inputs from files: the account fixture (read and checked against its format) and the event file.

A bad input stops the command before anything runs, with every problem named, so that a typo in a fixture
cannot pass unnoticed and leave a run that quietly tests something else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import decisions

FIXTURE_FORMAT = """\
the account fixture (--account FILE, JSON; fixtures/demo-account.json is one):
  {
    "description": "...",                        optional, for people
    "start": "2026-01-05T06:00:00Z",             the clock when the account is seeded (ISO-8601 with a zone;
                                                 default: now): the demo's day 0, and the time of `run`
                                                 unless the execution input has a "time"
    "seed": 0,                                   what every id is drawn from (default 0): the same fixture
                                                 and seed print the same key ids
    "parameters": {"SenderEmail": "..."},        template parameter overrides; --param wins over them
    "verifiedEmails": ["rotation@example.com"],  SES identities verified in the account
    "organization": {                            optional: the hub manages an AWS Organization (set the
                                                 parameter TargetAccounts, e.g. to ORGANIZATION); the fixture's
                                                 own users are then the hub account's
      "hubMemberStack": true,                    deploy member/template.yaml in the hub's account too (it is a
                                                 managed account when TargetAccounts takes it in)
      "accounts": [                              member accounts (ids drawn from their names and the seed)
        {"name": "payments",                     required and unique: letters, digits and -
         "memberStack": true,                    deploy member/template.yaml in it (default true)
         "status": "ACTIVE",                     or "SUSPENDED" (a closed account)
         "users": [...]}                         its IAM users, as below
      ]},
    "users": [                                   the IAM users, created in this order
      {"name": "ci-deployer",                    required and unique: an IAM user name
       "path": "/",                              IAM path (default "/")
       "tags": {"KeyRotation": "enabled"},       user tags; rotation is opt-in by tag (UserTagKey)
       "note": "...",                            optional, for people
       "keys": [                                 at most 2, as IAM allows
         {"ageDays": 95,                         the key's age at "start", in days (default 0)
          "created": "2025-10-02T06:00:00Z",     or its exact creation time, instead of ageDays
          "status": "Active",                    "Active" (default) or "Inactive"
          "inSecret": true,                      store it in the user's secret <SecretNamePrefix><name> as
                                                 the workflow does (a version named for the key); of
                                                 several, the last is AWSCURRENT
          "inactiveDaysAgo": 3,                  write the inactive-since tag the workflow keeps for an
                                                 Inactive key: its recovery window started that long ago
          "lastUsed": "2026-01-04T10:00:00Z",    when a consumer last signed with it (GetAccessKeyLastUsed),
          "lastUsedHoursAgo": 3,                 or how long before "start"; "lastUsedBy": its service (s3)
          "usedUntilDay": 9,                     a consumer keeps signing with it, every hour, until that
                                                 many days after "start" (then it has moved on)
          "note": "..."}                         optional, for people
       ]}
    ]
  }
  Any other field is an error, so that a typo cannot pass unnoticed.
"""

FIXTURE_FIELDS = {"description", "start", "seed", "parameters", "verifiedEmails", "users", "organization"}
ORGANIZATION_FIELDS = {"hubMemberStack", "accounts"}
MEMBER_FIELDS = {"name", "memberStack", "status", "users"}
USER_FIELDS = {"name", "path", "tags", "note", "keys"}
KEY_FIELDS = {"ageDays", "created", "status", "inSecret", "inactiveDaysAgo", "lastUsed", "lastUsedHoursAgo", "lastUsedBy",
              "usedUntilDay", "note"}


class InputError(Exception):
    """A bad fixture, event file or argument: nothing ran, exit status 2.

    The message is printed last, in one line that says what to do; ``details`` (a problem a line) come before it."""

    def __init__(self, message: str, details: list[str] = ()):
        super().__init__(message)
        self.details = list(details)


def read_fixture(path: Path) -> dict:
    fixture = read_json(path, "account fixture")
    problems = fixture_problems(fixture)
    if problems:
        raise InputError(
            f"account fixture {path} does not follow the format: fix the {len(problems)} problem(s) above "
            "(python -m emulator --help shows the format)",
            [f"account fixture {path}:", *(f"  - {problem}" for problem in problems)],
        )
    return fixture


def read_json(path: Path, what: str):
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise InputError(f"{what} {path}: {error.strerror or error}: give the path of a JSON file") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise InputError(f"{what} {path} is not valid JSON: {error}: fix the file there") from None


def fixture_problems(fixture) -> list[str]:
    """Everything wrong with a fixture, each with where it is; [] for a good one."""
    if not isinstance(fixture, dict):
        return ["it must be a JSON object"]
    problems = _unknown_fields(fixture, FIXTURE_FIELDS, "the fixture")
    if "start" in fixture and not _is_time(fixture["start"]):
        problems.append(f"start {fixture['start']!r} is not an ISO-8601 time with a zone, e.g. 2026-01-05T06:00:00Z")
    if "seed" in fixture and (not isinstance(fixture["seed"], int) or isinstance(fixture["seed"], bool)):
        problems.append(f"seed {fixture['seed']!r} is not a whole number, e.g. 0")
    parameters = fixture.get("parameters", {})
    if not isinstance(parameters, dict) or not all(isinstance(v, (str, int, float)) for v in parameters.values()):
        problems.append('parameters must be an object of template parameter values, e.g. {"MaxKeyAgeDays": "30"}')
    if not _is_list_of(fixture.get("verifiedEmails", []), str):
        problems.append("verifiedEmails must be a list of email addresses")
    problems += _users_problems(fixture.get("users", []), "")
    if "organization" in fixture:
        problems += _organization_problems(fixture["organization"])
    return problems


def _organization_problems(organization) -> list[str]:
    if not isinstance(organization, dict):
        return ['organization must be an object such as {"accounts": [{"name": "payments", "users": []}]}']
    problems = _unknown_fields(organization, ORGANIZATION_FIELDS, "organization")
    if not isinstance(organization.get("hubMemberStack", False), bool):
        problems.append("organization.hubMemberStack must be true or false")
    accounts = organization.get("accounts", [])
    if not isinstance(accounts, list):
        return problems + ["organization.accounts must be a list"]
    names: set[str] = set()
    for i, member in enumerate(accounts):
        where = f"organization.accounts[{i}]"
        if not isinstance(member, dict):
            problems.append(f"{where} must be an object")
            continue
        name = member.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,50}", name):
            problems.append(f"{where}.name {name!r} must be letters, digits and -")
        elif name in names:
            problems.append(f"{where}: a second account named {name}")
        names.add(name if isinstance(name, str) else "")
        problems += _unknown_fields(member, MEMBER_FIELDS, where)
        if not isinstance(member.get("memberStack", True), bool):
            problems.append(f"{where}.memberStack must be true or false")
        if member.get("status", "ACTIVE") not in ("ACTIVE", "SUSPENDED"):
            problems.append(f"{where}.status {member['status']!r} must be ACTIVE or SUSPENDED")
        problems += _users_problems(member.get("users", []), where + ".")
    return problems


def _users_problems(users, prefix: str) -> list[str]:
    """What is wrong with a list of users (the fixture's, or a member account's: ``prefix`` says where)."""
    problems: list[str] = []
    if not isinstance(users, list):
        return [f"{prefix}users must be a list"]
    names: set[str] = set()
    for i, user in enumerate(users):
        where = f"{prefix}users[{i}]"
        if not isinstance(user, dict):
            problems.append(f"{where} must be an object")
            continue
        name = user.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[\w+=,.@-]{1,64}", name):
            problems.append(f"{where}.name {name!r} is not an IAM user name")
        else:
            where += f" ({name})"
            if name in names:
                problems.append(f"{where}: a second user of that name")
            names.add(name)
        problems += _unknown_fields(user, USER_FIELDS, where)
        path = user.get("path", "/")
        if not isinstance(path, str) or not re.fullmatch(r"/([\x21-\x7e]*/)?", path):
            problems.append(f"{where}.path {path!r} is not an IAM path such as / or /services/")
        tags = user.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            problems.append(f'{where}.tags must be an object of strings, e.g. {{"KeyRotation": "enabled"}}')
        keys = user.get("keys", [])
        if not isinstance(keys, list) or len(keys) > 2:
            problems.append(f"{where}.keys must be a list of at most 2 keys (IAM's limit)")
            continue
        for j, key in enumerate(keys):
            problems += _key_problems(key, f"{where}.keys[{j}]")
    return problems


def _key_problems(key, where: str) -> list[str]:
    if not isinstance(key, dict):
        return [f"{where} must be an object"]
    problems = _unknown_fields(key, KEY_FIELDS, where)
    for field in ("ageDays", "inactiveDaysAgo", "lastUsedHoursAgo", "usedUntilDay"):
        value = key.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"{where}.{field} {value!r} must be a number of days, 0 or more")
    if "created" in key:
        if "ageDays" in key:
            problems.append(f"{where}: give ageDays or created, not both")
        if not _is_time(key["created"]):
            problems.append(f"{where}.created {key['created']!r} is not an ISO-8601 time with a zone")
    if "lastUsed" in key and not _is_time(key["lastUsed"]):
        problems.append(f"{where}.lastUsed {key['lastUsed']!r} is not an ISO-8601 time with a zone")
    if key.get("status", "Active") not in ("Active", "Inactive"):
        problems.append(f"{where}.status {key['status']!r} must be Active or Inactive")
    if not isinstance(key.get("inSecret", False), bool):
        problems.append(f"{where}.inSecret must be true or false")
    return problems


def _unknown_fields(obj: dict, allowed: set[str], where: str) -> list[str]:
    unknown = sorted(set(obj) - allowed)
    return [f"{where} has unknown field(s) {', '.join(unknown)}; allowed are {', '.join(sorted(allowed))}"] if unknown else []


def _is_time(value) -> bool:
    try:
        decisions.parse_time(value)
    except ValueError:
        return False
    return True


def _is_list_of(value, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) for v in value)
