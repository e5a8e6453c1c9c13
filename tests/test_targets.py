"""Which accounts a hub manages (functions/rotation/targets.py): TargetAccounts, an on-demand run's "accounts",
and what an account that cannot be managed does to the run. Pure rules, table-driven."""

import pytest

import decisions
import targets
from targets import Account, Targets

A, B, C = "111111111111", "222222222222", "333333333333"
OU = "ou-ab12-cdef3456"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", Targets()),
        ("  ", Targets()),
        ("ORGANIZATION", Targets(organization=True)),
        ("organization", Targets(organization=True)),
        (f"{A}", Targets(accounts=(A,))),
        (f"{A}, {B},{A}", Targets(accounts=(A, B))),  # spaces and repeats do not matter
        (f"{OU},{A}", Targets(accounts=(A,), units=(OU,))),
        ("r-ab12", Targets(units=("r-ab12",))),
    ],
)
def test_target_accounts_are_read_from_the_parameter(text, expected):
    assert targets.parse_targets(text) == expected


@pytest.mark.parametrize(
    "text, named",
    [
        ("12345", "'12345'"),
        (f"{A},ou-x", "'ou-x'"),
        (f"{A},arn:aws:iam::{B}:root", f"'arn:aws:iam::{B}:root'"),
        (f"ORGANIZATION,{A}", "mixes ORGANIZATION"),
    ],
)
def test_a_bad_target_is_named_with_the_fix(text, named):
    with pytest.raises(targets.InvalidTargets, match="TargetAccounts") as raised:
        targets.parse_targets(text)
    assert named in str(raised.value)


def test_an_empty_parameter_manages_this_account_only():
    assert targets.in_scope(Targets(), A) == [Account(A)]
    assert Targets().this_account_only and not Targets().reads_organization
    assert not Targets(accounts=(A,)).reads_organization  # listed ids need no Organizations call


def test_listed_accounts_and_accounts_below_ous_are_merged_in_order():
    found = [Account(C, listed=False), Account(B, "SUSPENDED", listed=False)]
    scope = targets.in_scope(Targets(accounts=(B, A), units=(OU,)), A, found)
    # B is both listed and below the OU: listed (a problem with it fails the run), with the status Organizations gave
    assert scope == [Account(A), Account(B, "SUSPENDED"), Account(C, listed=False)]


@pytest.mark.parametrize(
    "account, role_missing, fails",
    [
        (Account(A), True, True),  # listed by id: its role missing fails the run
        (Account(A, listed=False), True, True),  # an ACTIVE account of the organization without the member stack
        (Account(A, listed=False), False, True),  # ... or whose reads failed
        (Account(A, "SUSPENDED", listed=False), False, False),  # a closed account still in the organization: reported only
        (Account(A, "SUSPENDED"), False, True),  # named by id although closed: fix TargetAccounts
        (Account(A, listed=False, management=True), True, False),  # no StackSet deploys there: reported only
        (Account(A, listed=False, management=True), False, True),  # its member stack is there, its reads failed
        (Account(A, management=True), True, True),  # named by id: it is meant to be managed
    ],
)
def test_which_accounts_that_cannot_be_managed_fail_the_run(account, role_missing, fails):
    assert targets.fails_the_run(account, role_missing) is fails


def test_the_reason_says_what_to_deploy_where():
    reason = targets.unreachable_reason(Account(B), "AccessDenied", "not authorized", "iam-key-rotation-member", A)
    assert "AccessDenied: not authorized" in reason
    assert f"HubAccountId={A}" in reason and "MemberRoleName=iam-key-rotation-member" in reason
    assert f"create-stack-instances --stack-set-name iam-key-rotation-member --deployment-targets OrganizationalUnitIds=<its OU>,Accounts={B}" in reason
    suspended = targets.unreachable_reason(Account(B, "SUSPENDED", listed=False), "", "", "r", A)
    assert "SUSPENDED" in suspended and "remove it from TargetAccounts" in suspended


@pytest.mark.parametrize(
    "names, acting, problems",
    [
        (None, [A, B], []),
        ((B,), [B], []),
        ((C, A), [A], [f'"accounts" names {C}, outside']),
    ],
)
def test_an_on_demand_run_narrows_the_accounts_never_widens_them(names, acting, problems):
    chosen, found = targets.requested([Account(A), Account(B)], names)
    assert [a.id for a in chosen] == acting
    assert len(found) == len(problems) and all(p in f for p, f in zip(problems, found))


@pytest.mark.parametrize(
    "raw, problem",
    [
        ([A, A, B], None),
        ([], "non-empty list"),
        ("111111111111", "non-empty list"),
        (["1111"], "'1111'"),
    ],
)
def test_the_accounts_input_is_checked_with_the_rest_of_the_input(raw, problem):
    if problem is None:
        assert decisions.parse_run_request({"accounts": raw}, "2026-01-01T00:00:00Z").accounts == (A, B)
    else:
        with pytest.raises(decisions.InvalidInput, match="accounts") as raised:
            decisions.parse_run_request({"accounts": raw, "dryRun": "yes"}, "2026-01-01T00:00:00Z")
        assert problem in str(raised.value) and '"dryRun" must be true or false' in str(raised.value)  # named at once


def test_the_member_role_arn():
    assert targets.member_role_arn("aws-cn", A, "rotation-member") == f"arn:aws-cn:iam::{A}:role/rotation-member"


def test_a_refusal_asks_for_the_member_stack_and_anything_else_for_patience():
    denied = targets.unreachable_reason(Account(B), "AccessDenied", "no", "m", A)
    throttled = targets.unreachable_reason(Account(B), "Throttling", "Rate exceeded", "m", A)
    management = targets.unreachable_reason(Account(B, listed=False, management=True), "AccessDenied", "no", "m", A)
    assert "could not assume role m-reader" in denied and "Deploy member/template.yaml" in denied
    assert "Throttling: Rate exceeded" in throttled and "the next run tries again" in throttled and "Deploy" not in throttled
    assert "management account" in management and "by hand" in management
    own = targets.unreachable_reason(Account(A), "AccessDenied", "no", "m", A, own_roles=True)
    assert "its own member role m-reader" in own and "sam deploy" in own and "member/template.yaml" not in own
