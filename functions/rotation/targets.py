"""Which accounts a run manages, and through which role: pure rules (no boto3, no clock, no environment), like
decisions.py, with table-driven tests (tests/test_targets.py).

TargetAccounts (the hub's parameter):
  ""              this account only, as a single-account stack always did
  "ORGANIZATION"  every ACTIVE account of the organization, accounts created later included
  ids             a comma-separated list of account ids (123456789012), OU ids (ou-...) and root ids (r-...):
                  each account listed, and every ACTIVE account anywhere below each OU or root

Every managed account, the hub's own included, is reached through the member role (MemberRoleName) in it: the hub
stack creates that role in its own account when TargetAccounts is empty, and member/template.yaml creates it in
every other account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCOUNT_ID = re.compile(r"\d{12}")
UNIT_ID = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32}")
ORGANIZATION = "ORGANIZATION"
ACTIVE = "ACTIVE"
# The member roles, one per job (member/template.yaml): MemberRoleName writes keys and secrets (the state machine's
# Tasks), <MemberRoleName>-reader reads users and metadata (the planning, key status and reconcile functions), and
# <MemberRoleName>-key-check a secret's value (functions/key_check, packaged apart, names it itself).
READER_SUFFIX = "-reader"


class InvalidTargets(Exception):
    """TargetAccounts cannot be read. Raised before anything changes."""


@dataclass(frozen=True)
class Targets:
    organization: bool = False  # every ACTIVE account of the organization
    accounts: tuple[str, ...] = ()  # listed by id
    units: tuple[str, ...] = ()  # OUs or roots: every ACTIVE account below

    @property
    def this_account_only(self) -> bool:
        return not (self.organization or self.accounts or self.units)

    @property
    def reads_organization(self) -> bool:
        """Whether the accounts come from AWS Organizations (listed ids alone need no Organizations call)."""
        return self.organization or bool(self.units)


@dataclass(frozen=True)
class Account:
    """An account the run considered: its id, AWS Organizations' status (ACTIVE when not known from
    Organizations) and how it came in scope."""

    id: str
    status: str = ACTIVE
    listed: bool = True  # named by id in TargetAccounts (or this account): a problem with it fails the run
    management: bool = False  # the organization's management account (found in the organization, not listed)


def parse_targets(text: str) -> Targets:
    """TargetAccounts as written in the stack's parameters. Every bad entry is named at once."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not parts:
        return Targets()
    if any(p.upper() == ORGANIZATION for p in parts):
        if len(parts) > 1:
            raise InvalidTargets(
                f"TargetAccounts {text!r} mixes ORGANIZATION with ids: ORGANIZATION already means every ACTIVE "
                "account; give it alone, or list the account and OU ids without it"
            )
        return Targets(organization=True)
    bad = [p for p in parts if not (ACCOUNT_ID.fullmatch(p) or UNIT_ID.fullmatch(p))]
    if bad:
        raise InvalidTargets(
            f"TargetAccounts holds {', '.join(map(repr, bad))}, which is not an account id (12 digits), an OU id "
            "(ou-...) or a root id (r-...): fix the stack parameter (empty: this account only; ORGANIZATION: every "
            "account)"
        )
    return Targets(
        accounts=tuple(dict.fromkeys(p for p in parts if ACCOUNT_ID.fullmatch(p))),
        units=tuple(dict.fromkeys(p for p in parts if UNIT_ID.fullmatch(p))),
    )


def in_scope(targets: Targets, this_account: str, organization: list[Account] | None = None) -> list[Account]:
    """The accounts a run considers, sorted by id: this account for an empty TargetAccounts; each listed id;
    each account Organizations found below the listed OUs (or in the whole organization), ``organization``.
    A listed id counts as listed even when an OU also holds it."""
    if targets.this_account_only:
        return [Account(this_account)]
    found = {a.id: Account(a.id, a.status, listed=False, management=a.management) for a in organization or []}
    for account in targets.accounts:
        status = found[account].status if account in found else ACTIVE
        found[account] = Account(account, status, listed=True)
    return sorted(found.values(), key=lambda a: a.id)


def requested(accounts: list[Account], names: tuple[str, ...] | None) -> tuple[list[Account], list[str]]:
    """(the accounts a run acts on, the problems with its "accounts" input): an on-demand run may only narrow the
    scope, never widen it."""
    if names is None:
        return accounts, []
    known = {a.id: a for a in accounts}
    unknown = [n for n in names if n not in known]
    problems = (
        [f'"accounts" names {", ".join(unknown)}, outside this stack\'s TargetAccounts (it manages {", ".join(known) or "none"})']
        if unknown
        else []
    )
    return [known[n] for n in names if n in known], problems


def parse_requested_accounts(raw: object) -> tuple[tuple[str, ...] | None, list[str]]:
    """The execution input's "accounts": (ids in order, once each, or None when absent; problems)."""
    if raw is None:
        return None, []
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        return None, ['"accounts" must be a non-empty list of account ids, such as ["111111111111"]']
    bad = [a for a in raw if not ACCOUNT_ID.fullmatch(a)]
    if bad:
        return None, [f'"accounts" holds {", ".join(map(repr, bad))}, which is not an account id (12 digits)']
    return tuple(dict.fromkeys(raw)), []


def member_role_arn(partition: str, account: str, role_name: str) -> str:
    return f"arn:{partition}:iam::{account}:role/{role_name}"


def unreachable_reason(
    account: Account, error_code: str, error_message: str, role_name: str, hub_account: str, tried: str = "",
    own_roles: bool = False,
) -> str:
    """Why an account could not be managed, and the one thing to do about it. ``tried``: the member role whose
    assumption failed (MemberRoleName's reader role when not given); ``own_roles``: the stack creates the member
    roles itself (TargetAccounts empty), so no member stack is the fix."""
    tried = tried or role_name + READER_SUFFIX
    if account.status != ACTIVE:
        return (
            f"the account is {account.status} in AWS Organizations, so nothing was changed in it; remove it from "
            "TargetAccounts if it is closed for good"
        )
    if error_code not in DENIED:
        return (
            f"the hub could not assume role {tried} in it ({error_code}: {error_message}), so nothing was changed in "
            "it; the next run tries again"
        )
    if own_roles:
        return (
            f"the stack could not assume its own member role {tried} ({error_code}: {error_message}), so nothing was "
            "changed: the stack creates that role itself; update the stack (sam deploy) to put it back, and check "
            "that no one changed its trust policy, which names the stack's roles"
        )
    if account.management:
        return (
            f"the organization's management account has no member roles ({tried}: {error_code}), so it is not "
            "managed: a service-managed StackSet never deploys there. To manage its users, deploy member/template.yaml "
            f"there by hand with HubAccountId={hub_account} and MemberRoleName={role_name}; otherwise ignore this line"
        )
    return (
        f"the hub could not assume role {tried} in it ({error_code}: {error_message}), so nothing was changed "
        f"in it. Deploy member/template.yaml there with HubAccountId={hub_account} and MemberRoleName={role_name} "
        "(aws cloudformation create-stack-instances --stack-set-name iam-key-rotation-member --deployment-targets "
        f"OrganizationalUnitIds=<its OU>,Accounts={account.id},AccountFilterType=INTERSECTION --regions <this region>, "
        "or by hand: docs/organizations.md), or check that the role's trust policy still names the hub's roles"
    )


# What STS answers when the role is missing or does not trust the caller (it does not say which): the fix is the
# member stack. Anything else (throttling, a timeout) is passing: the next run tries again.
DENIED = {"AccessDenied", "AccessDeniedException"}


def fails_the_run(account: Account, member_role_missing: bool) -> bool:
    """Whether an account that could not be managed fails the run (the alarm fires); ``member_role_missing``: the
    hub's AssumeRole was refused (AccessDenied: no member stack, or one that does not trust the hub). A listed
    account always does. Found in an OU or the organization, a SUSPENDED account (a closed account stays listed for
    90 days) is only reported, and so is the management account without its member role (no StackSet deploys
    there): they must not page anyone every day. Any other failure in the management account (its member stack
    deployed by hand, then a read refused or throttled) fails the run like any account's."""
    if account.listed:
        return True
    if account.status != ACTIVE:
        return False
    return not (account.management and member_role_missing)
