"""Who is calling, and whether a role's trust policy lets them assume it: the AssumeRole check of the emulator's
several accounts (emulator/cross_account.py applies it; its docstring says what is evaluated and what is not).
Pure, apart from reading moto's store for the caller of an access key and for the role."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from dataclasses import dataclass

from .organization import MANAGEMENT_ACCOUNT

_ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):role/(?:[^/]+/)*([^/]+)")
_ROOT_ARN = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):root")
_USER_ARN = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):user/.+")
_SESSION_ARN = re.compile(r"arn:aws[\w-]*:sts::(\d{12}):assumed-role/.+")


# --- who is calling, and does a role trust them -----------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """A principal as AWS names it: ``arn`` in error messages, ``principal_arn`` for aws:PrincipalArn (a role
    session's is its role's ARN), ``role`` the (account, name) of the role of a session, else None."""

    arn: str
    account: str
    principal_arn: str
    role: tuple[str, str] | None = None

    @classmethod
    def root(cls, account: str) -> Caller:
        return cls(f"arn:aws:iam::{account}:root", account, f"arn:aws:iam::{account}:root")

    @classmethod
    def of_session(cls, assumed_role) -> Caller:
        name = assumed_role.role_arn.rsplit("/", 1)[-1]
        return cls(assumed_role.arn, assumed_role.account_id, assumed_role.role_arn, (assumed_role.account_id, name))


def caller_of(access_key_id: str) -> Caller:
    """The principal an access key belongs to: a role session, an IAM user, or else (the emulator's own keys, moto's
    default identity) the root of the default account."""
    from moto.iam.models import get_account_id_from, iam_backends
    from moto.sts.models import sts_backends

    account = get_account_id_from(access_key_id)
    session = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key_id)
    if session is not None:
        return Caller.of_session(session)
    user = iam_backends[account]["global"].get_user_from_access_key_id(access_key_id)
    if user is not None:
        return Caller(user.arn, user.account_id, user.arn)
    return Caller.root(MANAGEMENT_ACCOUNT)


def not_authorized(caller: Caller, role_arn: str) -> str:
    return f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"


def refusal(caller: Caller, role_arn: str) -> str | None:
    """AWS's AccessDenied message if ``caller`` may not assume ``role_arn`` (missing, or not trusting), else None."""
    role = _role(role_arn)
    if role is None or not trust_allows(role.assume_role_policy_document, caller):
        return not_authorized(caller, role_arn)
    return None


def _role(role_arn: str):
    from moto.iam.models import iam_backends

    match = _ROLE_ARN.fullmatch(role_arn or "")
    if match is None or match.group(1) not in iam_backends:
        return None
    return next((r for r in iam_backends[match.group(1)]["global"].roles.values() if r.arn == role_arn), None)


def trust_allows(document: str | dict, caller: Caller) -> bool:
    """Whether a role's trust policy lets ``caller`` call sts:AssumeRole (see the module's docstring for what is
    evaluated). A statement that cannot be evaluated never allows and, as a Deny, applies."""
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    allowed = False
    for statement in [statements] if isinstance(statements, dict) else statements:
        if not _covers_assume_role(statement):
            continue
        effect = statement.get("Effect")
        if "NotPrincipal" in statement:
            holds = None
        elif not _names(statement.get("Principal"), caller):
            continue
        else:
            holds = _condition_holds(statement.get("Condition") or {}, caller)
        if effect == "Deny" and holds is not False:
            return False
        if effect == "Allow" and holds is True:
            allowed = True
    return allowed


def _listed(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def _covers_assume_role(statement: dict) -> bool:
    def covers(pattern: str) -> bool:
        return fnmatch.fnmatchcase("sts:assumerole", pattern.lower())

    if "NotAction" in statement:
        return not any(covers(a) for a in _listed(statement["NotAction"]))
    return any(covers(a) for a in _listed(statement.get("Action")))


def _names(principal, caller: Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    return any(_names_one(entry, caller) for entry in _listed(principal.get("AWS")))


def _names_one(entry: str, caller: Caller) -> bool:
    if entry == "*":
        return True
    if re.fullmatch(r"\d{12}", entry):
        return caller.account == entry
    if match := _ROOT_ARN.fullmatch(entry):
        return caller.account == match.group(1)
    if match := _ROLE_ARN.fullmatch(entry):
        return caller.role == (match.group(1), match.group(2))
    if _USER_ARN.fullmatch(entry):
        return caller.principal_arn == entry
    if _SESSION_ARN.fullmatch(entry):
        return caller.arn == entry
    return False


_OPERATORS = {"stringequals", "stringlike", "arnequals", "arnlike"}


def _condition_holds(condition: dict, caller: Caller) -> bool | None:
    """True, False, or None when it cannot be evaluated; blocks and keys all must hold, a key's values any."""
    known = {"aws:principalarn": caller.principal_arn, "aws:principalaccount": caller.account}
    outcomes = []
    for operator, tests in condition.items():
        for key, values in (tests or {}).items():
            if operator.lower() not in _OPERATORS or key.lower() not in known:
                outcomes.append(None)
                continue
            actual = known[key.lower()]
            outcomes.append(any(_compares(operator.lower(), actual, str(v)) for v in _listed(values)))
    if False in outcomes:
        return False
    return None if None in outcomes else True


def _compares(operator: str, actual: str, expected: str) -> bool:
    if operator == "stringequals":
        return actual == expected
    if operator == "stringlike":
        return _wildcard(expected).fullmatch(actual) is not None
    # ArnEquals and ArnLike: each of the six colon-separated parts on its own, with wildcards
    actual_parts, expected_parts = actual.split(":", 5), expected.split(":", 5)
    return len(actual_parts) == len(expected_parts) == 6 and all(
        _wildcard(e).fullmatch(a) is not None for a, e in zip(actual_parts, expected_parts)
    )


@functools.lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern:
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), re.DOTALL)


# --- sessions and clients -----------------------------------------------------------------------------------------
