"""member/template.yaml, the stack a StackSet deploys in every managed account: linted and checkov-clean (each run
once, here), and its three roles, one per job of the hub (the state machine writes, the planning functions read,
the key check reads a secret's value), each trusted by that job's hub roles only and holding exactly the least
privilege of that job in the account; the same three roles the hub template creates in its own account, whose
roles may assume exactly the member role that trusts them.

The constants, helpers and the module-scoped ``member`` fixture here are shared with test_member_secrets_key.py,
test_member_parameters.py and test_member_deployed.py."""

import json
import sys
from collections import defaultdict
from fnmatch import fnmatchcase
from pathlib import Path
from typing import NamedTuple

import pytest
import tool_cache
from samtranslator.yaml_helper import yaml_parse

from emulator import member_stack, stack

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "member" / "template.yaml"
RAW = yaml_parse(TEMPLATE.read_text())
HUB, MEMBER, REGION = "111122223333", "444455556666", "us-east-1"
# The hub's roles that act in a managed account (each named <MemberRoleName>-hub-<name>), and no other.
HUB_ROLES = ("state-machine", "plan-run", "plan-batch", "key-status", "reconcile", "key-check")
BOUNDARY = f"arn:aws:iam::{MEMBER}:policy/platform-boundary"
READERS = f"arn:aws:iam::{MEMBER}:role/payments-service,arn:aws:iam::{MEMBER}:user/auditor"


class Job(NamedTuple):
    suffix: str  # the role's name is MemberRoleName + suffix
    hub_roles: tuple[str, ...]  # the hub's roles of this job, the only ones the role trusts
    hub_logical: str  # the same role in the hub template (its own account, TargetAccounts empty)
    output: str


# Logical id in member/template.yaml -> its job.
JOBS = {
    "MemberRole": Job("", ("state-machine",), "MemberRole", "MemberRoleArn"),
    "ReaderRole": Job("-reader", ("plan-run", "plan-batch", "key-status", "reconcile"), "MemberReaderRole", "ReaderRoleArn"),
    "KeyCheckRole": Job("-key-check", ("key-check",), "MemberKeyCheckRole", "KeyCheckRoleArn"),
}

DEFAULTS = {"HubAccountId": HUB}
EVERYTHING = {
    "HubAccountId": HUB,
    "MemberRoleName": "platform-key-rotation",
    "UserPath": "/service-accounts/",
    "SecretNamePrefix": "rotated/",
    "PermissionsBoundary": BOUNDARY,
    "AllowConsumerPolicy": "true",
    "SecretReaders": READERS,
}
# Actions IAM and Secrets Manager offer no resource-level permission for: "*" is their only possible Resource.
NO_RESOURCE_SCOPE = {
    "iam:GetAccountAuthorizationDetails", "secretsmanager:ListSecrets", "iam:GenerateCredentialReport", "iam:GetCredentialReport",
}
# The verbs of actions that only read.
READING = ("Get", "List", "Describe")
# Asks IAM to write the account's credential report, which the reader then reads: changes no user, key or secret.
READERS_REPORT = "iam:GenerateCredentialReport"


def as_list(value):
    return value if isinstance(value, list) else [value]


def deployed(parameters: dict, account_id: str = MEMBER, region: str = REGION) -> dict:
    """Logical id -> resolved properties of every resource the parameters create in the member account."""
    resources, resolver = member_stack.resolve(parameters, account_id, region)
    return {logical: {"Type": r["Type"], **resolver.resolve(r.get("Properties", {}))} for logical, r in resources.items()}


@pytest.fixture(scope="module", params=[DEFAULTS, EVERYTHING], ids=["defaults", "all-options"])
def member(request):
    return {**{k: str(v.get("Default", "")) for k, v in RAW["Parameters"].items()}, **request.param}, deployed(request.param)


def roles(resources: dict) -> dict[str, dict]:
    return {logical: r for logical, r in resources.items() if r["Type"] == "AWS::IAM::Role"}


def role_statements(role: dict) -> list[dict]:
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def actions_of(role: dict) -> set[str]:
    return {action for statement in role_statements(role) for action in as_list(statement["Action"])}


def trusted(role: dict) -> list[str]:
    """The principals of the role's one trust statement, which allows sts:AssumeRole to roles only."""
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Effect"], trust["Action"]) == ("Allow", "sts:AssumeRole") and "Condition" not in trust, trust
    assert list(trust["Principal"]) == ["AWS"], "roles only: no service, no federated principal"
    return as_list(trust["Principal"]["AWS"])


def name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def key_statements(resources: dict) -> list[dict]:
    (key,) = [r for r in resources.values() if r["Type"] == "AWS::KMS::Key"]
    return key["KeyPolicy"]["Statement"]


def allows(statement: dict, action: str) -> bool:
    """The statement allows the action, or an action pattern that covers it (kms:Get*), or one it covers."""
    return statement["Effect"] == "Allow" and any(
        fnmatchcase(action, a) or fnmatchcase(a, action) for a in as_list(statement["Action"])
    )


def expected_grants(p: dict) -> dict[str, dict[str, str]]:
    """The contract: for each role, each action it holds, and the one resource it holds it on."""
    users = f"arn:aws:iam::{MEMBER}:user/*"
    managed = f"arn:aws:iam::{MEMBER}:user{p['UserPath']}*"
    secrets = f"arn:aws:secretsmanager:{REGION}:{MEMBER}:secret:{p['SecretNamePrefix']}*"
    writes = {
        "iam:CreateAccessKey": managed, "iam:UpdateAccessKey": managed, "iam:DeleteAccessKey": managed,
        "iam:TagUser": managed, "iam:UntagUser": managed,
        "secretsmanager:PutSecretValue": secrets, "secretsmanager:CreateSecret": secrets,
    }
    if p["AllowConsumerPolicy"] == "true":
        writes["secretsmanager:PutResourcePolicy"] = secrets
    reads = {
        "iam:GetAccountAuthorizationDetails": "*", "secretsmanager:ListSecrets": "*",
        "iam:GenerateCredentialReport": "*", "iam:GetCredentialReport": "*",
        "iam:GetUser": users, "iam:ListAccessKeys": users,
        "iam:GetAccessKeyLastUsed": managed,
        "secretsmanager:DescribeSecret": secrets, "secretsmanager:GetResourcePolicy": secrets,
    }
    return {"MemberRole": writes, "ReaderRole": reads, "KeyCheckRole": {"secretsmanager:GetSecretValue": secrets}}


# --- linters -------------------------------------------------------------------------------------------------


def test_cfn_lint_passes():
    command = [str(Path(sys.executable).with_name("cfn-lint")), "member/template.yaml"]
    result = tool_cache.run(command, inputs=tool_cache.referenced_paths(ROOT / "member" / "template.yaml"), cwd=ROOT,
                            timeout=180, env_prefixes=("AWS_", "CFN"))  # a clean verdict is reused: tests/tool_cache.py
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}{result.stderr}"


@pytest.mark.slow
def test_checkov_finds_nothing_but_skips_justified_in_the_resources_metadata():
    from test_least_privilege import checkov_report

    report = checkov_report(TEMPLATE)
    assert report["summary"]["resource_count"] == len(RAW["Resources"]) and report["summary"]["passed"] >= 5


# --- the three roles -----------------------------------------------------------------------------------------


def test_three_roles_one_per_job_named_after_MemberRoleName(member):
    parameters, resources = member
    assert {logical: role["RoleName"] for logical, role in roles(resources).items()} == {
        logical: parameters["MemberRoleName"] + job.suffix for logical, job in JOBS.items()
    }


@pytest.mark.parametrize("logical", JOBS)
def test_each_role_is_trusted_by_the_hubs_roles_of_its_job_only(member, logical):
    parameters, resources = member
    principals_ = trusted(resources[logical])
    assert sorted(principals_) == sorted(
        f"arn:aws:iam::{HUB}:role/{parameters['MemberRoleName']}-hub-{name}" for name in JOBS[logical].hub_roles
    )
    for principal in principals_:
        assert "*" not in principal and not principal.endswith(":root") and f"::{MEMBER}:" not in principal, principal


def test_together_the_roles_trust_the_hubs_six_roles_and_none_trusts_two_jobs(member):
    parameters, resources = member
    trusts = {logical: {name_of(arn) for arn in trusted(resources[logical])} for logical in JOBS}
    assert set().union(*trusts.values()) == {f"{parameters['MemberRoleName']}-hub-{name}" for name in HUB_ROLES}
    assert sum(len(names) for names in trusts.values()) == len(HUB_ROLES), f"a hub role trusted by two roles: {trusts}"


@pytest.mark.parametrize("logical", JOBS)
def test_every_grant_is_the_jobs_contract_in_this_account_only(member, logical):
    parameters, resources = member
    granted = defaultdict(list)
    for statement in role_statements(resources[logical]):
        assert statement["Effect"] == "Allow", statement
        for action in as_list(statement["Action"]):
            granted[action] += as_list(statement["Resource"])
    assert dict(granted) == {action: [resource] for action, resource in expected_grants(parameters)[logical].items()}
    for action, resources_of in granted.items():
        if "*" in resources_of:
            assert action in NO_RESOURCE_SCOPE, f"{action} on *"


def test_no_role_holds_another_jobs_actions(member):
    """Whatever the contract says: the writer reads nothing (a secret's value least of all), the reader writes
    nothing and never reads a secret's value, the key check reads secrets' values only, and no role can chain
    into another (no sts:, no iam:PassRole)."""
    _, resources = member
    writer, reader, key_check = (actions_of(resources[logical]) for logical in ("MemberRole", "ReaderRole", "KeyCheckRole"))
    verb = lambda action: action.split(":", 1)[1]  # noqa: E731
    assert writer and [a for a in writer if verb(a).startswith(READING)] == [], f"the writer reads: {sorted(writer)}"
    writes = [a for a in reader if not verb(a).startswith(READING) and a != READERS_REPORT]
    assert reader and writes == [], f"the reader writes: {sorted(reader)}"
    assert key_check == {"secretsmanager:GetSecretValue"}
    assert "secretsmanager:GetSecretValue" not in writer | reader
    assert not (writer & reader or writer & key_check or reader & key_check)
    for action in writer | reader | key_check:
        assert action.startswith(("iam:", "secretsmanager:")) and action != "iam:PassRole", action


def test_the_consumer_policy_is_writable_by_the_writer_only_when_AllowConsumerPolicy_is_true():
    def puts(parameters):
        return {logical: s for logical, role in roles(deployed(parameters)).items() for s in role_statements(role)
                if allows(s, "secretsmanager:PutResourcePolicy")}

    assert puts(DEFAULTS) == {} and puts({**DEFAULTS, "AllowConsumerPolicy": "false"}) == {}
    ((writer, put),) = puts({**DEFAULTS, "AllowConsumerPolicy": "true"}).items()
    assert writer == "MemberRole"
    assert put["Resource"] == f"arn:aws:secretsmanager:{REGION}:{MEMBER}:secret:iam-key-rotation/*"


def test_no_action_wildcard_and_every_statement_says_why(member):
    _, resources = member
    for role in roles(resources).values():
        for statement in role_statements(role) + role["AssumeRolePolicyDocument"]["Statement"]:
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"grants {action}"
    for statements in [role_statements(role) + role["AssumeRolePolicyDocument"]["Statement"] for role in roles(resources).values()] + [key_statements(resources)]:
        sids = [s.get("Sid", "") for s in statements]
        assert all(len(sid) > 10 for sid in sids) and len(set(sids)) == len(sids), sids


def test_only_the_workflows_own_tags_are_written_and_no_other_grant_has_a_condition(member):
    _, resources = member
    tagging = []
    for logical, role in roles(resources).items():
        for statement in role_statements(role):
            if set(as_list(statement["Action"])) & {"iam:TagUser", "iam:UntagUser"}:
                tagging.append(logical)
                assert sorted(statement["Action"]) == ["iam:TagUser", "iam:UntagUser"]
                assert statement["Condition"] == {
                    "ForAllValues:StringLike": {"aws:TagKeys": ["key-rotation:inactive-since:*", "key-rotation:secret"]}
                }
            else:
                assert "Condition" not in statement, statement
    assert tagging == ["MemberRole"]


def test_the_permissions_boundary_applies_to_all_three_roles_when_given(member):
    parameters, resources = member
    assert {logical: role.get("PermissionsBoundary") for logical, role in roles(resources).items()} == {
        logical: parameters["PermissionsBoundary"] or None for logical in JOBS
    }


# --- the same roles as the hub's own -------------------------------------------------------------------------


HUB_CASES = [
    ({"UserPath": "/", "SecretNamePrefix": "iam-key-rotation/"}, "false"),
    ({"MemberRoleName": "platform-key-rotation", "UserPath": "/service-accounts/", "SecretNamePrefix": "rotated/",
      "PermissionsBoundary": f"arn:aws:iam::{stack.ACCOUNT_ID}:policy/platform-boundary",
      "ConsumerPrincipalArn": f"arn:aws:iam::{stack.ACCOUNT_ID}:role/payments-service"}, "true"),
    # the hub's writer and key check then also hold the given key: a KMS grant, not compared
    ({"UserPath": "/", "SecretNamePrefix": "iam-key-rotation/",
      "KmsKeyArn": f"arn:aws:kms:{stack.REGION}:{stack.ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}, "false"),
]


@pytest.mark.parametrize(("hub_parameters", "allow_consumer"), HUB_CASES, ids=["defaults", "all-options", "given-key"])
def test_each_role_holds_and_trusts_what_the_hubs_role_of_the_same_job_does(hub_parameters, allow_consumer):
    """Three roles, two templates: for each job, the hub template's role in its own account (TargetAccounts
    empty) holds the member template's role's IAM and Secrets Manager grants, action by action, for the same
    name, path, prefix, boundary and consumer setting, and trusts the hub roles of the same names (the hub's
    account differs). No other hub role holds such a grant: every call in a managed account goes through them.
    A grant covered by a broader one of the same action counts once."""
    resources, resolver = stack.resolve(hub_parameters)
    hub_roles = {logical: resolver.resolve(r["Properties"]) for logical, r in roles(resources).items()}
    member_parameters = {"HubAccountId": HUB, "AllowConsumerPolicy": allow_consumer,
                         **{k: v for k, v in hub_parameters.items() if k in RAW["Parameters"]}}
    member = deployed(member_parameters, account_id=stack.ACCOUNT_ID, region=stack.REGION)
    for logical, job in JOBS.items():
        hub_role, member_role = hub_roles.pop(job.hub_logical), member[logical]
        assert hub_role["RoleName"] == member_role["RoleName"], logical
        assert grants_in_the_managed_account(role_statements(hub_role)) == grants_in_the_managed_account(role_statements(member_role)), logical
        assert sorted(map(name_of, trusted(hub_role))) == sorted(map(name_of, trusted(member_role))), logical
        assert {arn.split(":")[4] for arn in trusted(hub_role)} == {stack.ACCOUNT_ID}
        assert hub_role.get("PermissionsBoundary") == member_role.get("PermissionsBoundary"), logical
    others = [s for role in hub_roles.values() for s in role_statements(role) if "Policies" in role]
    assert grants_in_the_managed_account(others) == {}


def test_each_hub_role_may_assume_exactly_the_member_role_that_trusts_it():
    """The other side of the trust: the hub template's roles' sts:AssumeRole grants name, in any account, the one
    member role whose trust names them (a mismatch is a refused call in every managed account)."""
    resources, resolver = stack.resolve({})
    may_assume = defaultdict(set)
    for logical, role in roles(resources).items():
        role = resolver.resolve(role["Properties"])
        for statement in role_statements(role) if "Policies" in role else []:
            if allows(statement, "sts:AssumeRole"):
                for resource in as_list(statement["Resource"]):
                    # this account's only, for a stack that manages only this account (the default here)
                    assert resource.startswith(f"arn:aws:iam::{stack.ACCOUNT_ID}:role/"), resource
                    may_assume[role.get("RoleName", logical)].add(name_of(resource))
    trusted_by = defaultdict(set)
    for logical, role in roles(deployed(DEFAULTS)).items():
        for arn in trusted(role):
            trusted_by[name_of(arn)].add(role["RoleName"])
    assert dict(may_assume) == dict(trusted_by)


def grants_in_the_managed_account(statements: list[dict]) -> dict[str, set]:
    grants = defaultdict(set)
    for statement in statements:
        for action in as_list(statement["Action"]):
            if statement["Effect"] == "Allow" and action.startswith(("iam:", "secretsmanager:")):
                condition = json.dumps(statement.get("Condition", {}), sort_keys=True)
                grants[action] |= {(resource, condition) for resource in as_list(statement["Resource"])}
    return {
        action: {(r, c) for r, c in held if not any(r2 != r and c2 == c and fnmatchcase(r, r2) for r2, c2 in held)}
        for action, held in grants.items()
    }
