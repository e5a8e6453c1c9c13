"""The emulator's own organization of accounts: an organization managed by the default account (123456789012),
member accounts with the role OrganizationAccountAccessRole trusting the management account, clients acting in a
member as that role, and closing a member.

How moto is made to behave like AWS across accounts (AssumeRole's trust check, Task Credentials, Lambda's sessions,
ListAccounts outside an organization) is cross_account's, whose docstring lists each divergence; it re-exports
every name here. Not AWS behaviour: a member account's id comes from its name (and the seed), so the same names give
the same ids; CloseAccount suspends at once (AWS: PENDING_CLOSURE first).
The active cross_account.Accounts (several_accounts rebinds it) is read through that module at each call.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterable
from dataclasses import dataclass
from unittest import mock

import boto3

MANAGEMENT_ACCOUNT = "123456789012"  # moto's default account: the emulator's own, the hub
REGION = "us-east-1"
ORGANIZATION_ROLE = "OrganizationAccountAccessRole"


@dataclass
class Organization:
    id: str
    management_account: str
    members: dict[str, str]  # each member account's name -> its id


@functools.cache
def _management(service: str):
    """A client of the management account (moto's default identity: its root), for the emulator's own calls."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="emulator", aws_secret_access_key="emulator")


def create_organization(members: int | Iterable[str] = 2) -> Organization:
    """An organization managed by the default account (123456789012), with member accounts ``member-1``... (or the
    names given), each with the role OrganizationAccountAccessRole trusting the management account, as AWS
    Organizations creates it. A member's id comes from its name (and the seed): the same names, the same ids."""
    names = [f"member-{n}" for n in range(1, members + 1)] if isinstance(members, int) else list(members)
    organizations = _management("organizations")
    with _account_ids_from_names() as named:
        named("management")  # moto makes (and drops) an account for the management account first
        organization = organizations.create_organization(FeatureSet="ALL")["Organization"]
    members_by_name = {name: create_member(name) for name in names}
    return Organization(organization["Id"], organization["MasterAccountId"], members_by_name)


def create_member(name: str) -> str:
    """One more member account in the organization created before; its id."""
    with _account_ids_from_names() as named:
        named(name)
        status = _management("organizations").create_account(AccountName=name, Email=f"{name}@example.com")
    return status["CreateAccountStatus"]["AccountId"]


@contextlib.contextmanager
def _account_ids_from_names():
    from moto.iam.models import iam_backends
    from moto.organizations import utils

    from . import cross_account  # its _ACTIVE as it is now (several_accounts rebinds it)

    seed = cross_account._ACTIVE.seed if cross_account._ACTIVE else 0
    wanted: list[str] = []

    def named(name: str) -> None:
        generator = random.Random(f"{seed}/account/{name}")
        while True:
            account_id = "".join(generator.choice("0123456789") for _ in range(12))
            if account_id != MANAGEMENT_ACCOUNT and account_id not in iam_backends:
                break
        wanted[:] = [account_id]

    with mock.patch.object(utils, "make_random_account_id", lambda: wanted[0]):
        yield named


def client_in(account_id: str, service: str, region: str = REGION, role_name: str = ORGANIZATION_ROLE):
    """A boto3 client acting in ``account_id`` as its OrganizationAccountAccessRole, assumed by the management
    account (PermissionError if the role is missing or does not trust it). Kept for the session's keys."""
    from . import cross_account  # its _ACTIVE as it is now (several_accounts rebinds it)

    return (cross_account._ACTIVE or cross_account.Accounts(0)).client_in(account_id, service, region, role_name)


def suspend(account_id: str) -> None:
    """Close a member account: Organizations reports it SUSPENDED."""
    _management("organizations").close_account(AccountId=account_id)
