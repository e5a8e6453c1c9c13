"""member/template.yaml, the stack a StackSet deploys in every managed account: linted, checkov-clean, three
roles, one per job of the hub (the state machine writes, the planning functions read, the key check reads a
secret's value), each trusted by that job's hub roles only and holding exactly the least privilege of that job
in the account, the same three roles the hub template creates in its own account; the key of the account's
secrets decryptable only through Secrets Manager, by the writer, the key check and the secrets' readers
(SecretReaders); and deployed into a moto member account through emulator/member_stack.py, where each hub role
assumes its own job's role and nothing else."""

import json
import subprocess
import sys
from collections import defaultdict
from fnmatch import fnmatchcase
from pathlib import Path
from typing import NamedTuple

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from samtranslator.yaml_helper import yaml_parse

from emulator import cross_account, member_stack, stack
from emulator.stack import ParameterError

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
NO_RESOURCE_SCOPE = {"iam:GetAccountAuthorizationDetails", "secretsmanager:ListSecrets"}
# Key policy actions that decrypt, or let a principal give itself decryption without changing the key policy.
DECRYPTING = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant")
# The verbs of actions that only read.
READING = ("Get", "List", "Describe")


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


def principals(statement: dict) -> list[str]:
    principal = statement["Principal"]
    return as_list(principal) if isinstance(principal, str) else as_list(principal.get("AWS", [])) + as_list(principal.get("Service", []))


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
        "iam:GetUser": users, "iam:ListAccessKeys": users,
        "iam:GetAccessKeyLastUsed": managed,
        "secretsmanager:DescribeSecret": secrets, "secretsmanager:GetResourcePolicy": secrets,
    }
    return {"MemberRole": writes, "ReaderRole": reads, "KeyCheckRole": {"secretsmanager:GetSecretValue": secrets}}


# --- linters -------------------------------------------------------------------------------------------------


def test_cfn_lint_passes():
    command = [str(Path(sys.executable).with_name("cfn-lint")), "member/template.yaml"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}{result.stderr}"


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.mark.slow
def test_checkov_finds_nothing_but_skips_justified_in_the_resources_metadata():
    assert CHECKOV.exists(), "checkov is not installed: `make test` installs it in .venv-checkov (requirements-checkov.txt)"
    result = subprocess.run(
        [str(CHECKOV), "-f", str(TEMPLATE), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300,
    )
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == [], "checkov failed checks (fix them, or skip with a justification in the resource's Metadata):\n" + "\n".join(failed)
    assert report["summary"]["resource_count"] == len(RAW["Resources"]) and report["summary"]["passed"] >= 5
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped.get("check_result", {}).get("suppress_comment", "")) > 20, f"unjustified skip: {skipped['check_id']}"


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
    assert reader and [a for a in reader if not verb(a).startswith(READING)] == [], f"the reader writes: {sorted(reader)}"
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


# --- the same roles as the hub's own ---------------------------------------------------------------------------


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


# --- the key of the member's secrets -------------------------------------------------------------------------


def test_the_account_root_administers_the_key_but_cannot_decrypt(member):
    _, resources = member
    root = f"arn:aws:iam::{MEMBER}:root"
    administering = [s for s in key_statements(resources) if root in principals(s)]
    assert administering and allows(administering[0], "kms:ScheduleKeyDeletion") and allows(administering[0], "kms:PutKeyPolicy")
    for statement in administering:
        assert not any(allows(statement, action) for action in DECRYPTING), statement


def through_secrets_manager(parameters: dict, account_id: str = MEMBER) -> dict:
    secrets = f"arn:aws:secretsmanager:{REGION}:{account_id}:secret:{parameters['SecretNamePrefix']}*"
    return {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:SecretARN": secrets}}


def test_only_the_writer_the_key_check_and_the_secret_readers_decrypt_and_only_through_secrets_manager(member):
    parameters, resources = member
    role_arn = {logical: f"arn:aws:iam::{MEMBER}:role/{parameters['MemberRoleName']}{job.suffix}" for logical, job in JOBS.items()}
    readers = ["*"] if parameters["SecretReaders"] == "ACCOUNT" else parameters["SecretReaders"].split(",")
    statements = key_statements(resources)
    decrypting = [s for s in statements if any(allows(s, a) for a in DECRYPTING)]
    by_principal = {p: s for s in decrypting for p in principals(s)}
    assert sorted(by_principal) == sorted([role_arn["MemberRole"], role_arn["KeyCheckRole"], *readers])
    assert not any(role_arn["ReaderRole"] in principals(s) for s in statements), "the reader role reads no value"
    for statement in decrypting:
        assert statement["Condition"]["StringEquals"]["kms:ViaService"] == f"secretsmanager.{REGION}.amazonaws.com", statement
        assert statement["Condition"]["StringLike"] == through_secrets_manager(parameters)["StringLike"], statement

    writer, key_check = by_principal[role_arn["MemberRole"]], by_principal[role_arn["KeyCheckRole"]]
    assert principals(writer) == [role_arn["MemberRole"]] and principals(key_check) == [role_arn["KeyCheckRole"]]
    assert sorted(writer["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"] and writer["Condition"] == through_secrets_manager(parameters)
    assert key_check["Action"] == "kms:Decrypt" and key_check["Condition"] == through_secrets_manager(parameters)
    writers = {p for s in statements if allows(s, "kms:GenerateDataKey") or allows(s, "kms:Encrypt") for p in principals(s)}
    assert writers == {role_arn["MemberRole"]}, "principals of the account read secrets; only the writer writes them"


def secret_readers_statements(parameters: dict) -> list[dict]:
    """The key policy statements that name neither the account root nor one of the stack's roles."""
    resources = deployed(parameters)
    own = {f"arn:aws:iam::{MEMBER}:root"} | {f"arn:aws:iam::{MEMBER}:role/{r['RoleName']}" for r in roles(resources).values()}
    return [s for s in key_statements(resources) if not set(principals(s)) & own]


def test_by_default_this_accounts_principals_decrypt_through_secrets_manager_as_under_aws_secretsmanager():
    assert RAW["Parameters"]["SecretReaders"]["Default"] == "ACCOUNT"
    for parameters in (DEFAULTS, {**DEFAULTS, "SecretReaders": "ACCOUNT"}):
        (anyone,) = secret_readers_statements(parameters)
        assert (principals(anyone), anyone["Action"]) == (["*"], "kms:Decrypt")
        default = through_secrets_manager({"SecretNamePrefix": "iam-key-rotation/"})
        assert anyone["Condition"] == {"StringEquals": {"kms:CallerAccount": MEMBER, **default["StringEquals"]},
                                       "StringLike": default["StringLike"]}


@pytest.mark.parametrize("readers", [
    [f"arn:aws:iam::{MEMBER}:role/payments-service"],
    [f"arn:aws:iam::{MEMBER}:role/payments-service", f"arn:aws:iam::{MEMBER}:user/auditor", "arn:aws:iam::777788889999:role/team/reader"],
], ids=["one-role", "roles-and-a-user"])
def test_named_secret_readers_are_the_only_others_who_decrypt_and_no_wildcard_remains(readers):
    (named,) = secret_readers_statements({**DEFAULTS, "SecretReaders": ",".join(readers)})
    assert (principals(named), named["Action"]) == (readers, "kms:Decrypt")
    assert named["Condition"] == through_secrets_manager({"SecretNamePrefix": "iam-key-rotation/"})
    everyone = [p for s in key_statements(deployed({**DEFAULTS, "SecretReaders": ",".join(readers)})) for p in principals(s)]
    assert "*" not in everyone and not any("*" in p for p in everyone), everyone


@pytest.mark.parametrize("wrong", [
    "", "*", "account", "ACCOUNT,arn:aws:iam::444455556666:role/payments-service",
    "arn:aws:iam::444455556666:root", "444455556666", "arn:aws:iam::44445555666:role/payments-service",
    "arn:aws:iam::444455556666:group/readers", "arn:aws:sts::444455556666:assumed-role/payments-service/s",
    "arn:aws:iam::444455556666:role/payments-service,", "arn:aws:iam::444455556666:role/",
])
def test_secret_readers_is_ACCOUNT_or_a_list_of_role_and_user_arns(wrong):
    with pytest.raises(ParameterError, match="SecretReaders"):
        member_stack.parameter_values(RAW, {**DEFAULTS, "SecretReaders": wrong})


def test_the_key_rotates_outlives_its_stack_and_is_named_after_the_role(member):
    parameters, resources = member
    (logical,) = [k for k, r in RAW["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    assert (RAW["Resources"][logical]["DeletionPolicy"], RAW["Resources"][logical]["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert resources[logical]["EnableKeyRotation"] is True
    (alias,) = [r for r in resources.values() if r["Type"] == "AWS::KMS::Alias"]
    assert alias["AliasName"] == f"alias/{parameters['MemberRoleName']}-secrets"
    assert alias["TargetKeyId"] == member_stack.PLACEHOLDER_KEY_ID  # Ref to the key: its id


# --- parameters ----------------------------------------------------------------------------------------------


def test_hub_account_id_must_be_given_as_twelve_digits():
    assert "Default" not in RAW["Parameters"]["HubAccountId"]
    with pytest.raises(ParameterError, match="HubAccountId"):
        member_stack.parameter_values(RAW, {})
    for wrong in ("11112222333", "1111222233334", "11112222333x", f"arn:aws:iam::{HUB}:root"):
        with pytest.raises(ParameterError, match="HubAccountId"):
            member_stack.parameter_values(RAW, {"HubAccountId": wrong})
    assert member_stack.parameter_values(RAW, {"HubAccountId": HUB})["HubAccountId"] == HUB


def test_a_member_role_name_leaves_room_for_every_role_name_made_from_it():
    spec = RAW["Parameters"]["MemberRoleName"]
    assert (spec["Default"], spec["AllowedPattern"], spec["MaxLength"]) == ("iam-key-rotation-member", r"^[\w-]+$", 40)
    longest = "r" * 40
    resources = roles(deployed({**DEFAULTS, "MemberRoleName": longest}))
    names = [role["RoleName"] for role in resources.values()] + [name_of(arn) for role in resources.values() for arn in trusted(role)]
    assert {f"{longest}-hub-state-machine", f"{longest}-key-check"} <= set(names)  # the longest of each side
    assert max(len(name) for name in names) <= 64  # IAM's limit on a role name
    with pytest.raises(ParameterError, match="MemberRoleName"):
        member_stack.parameter_values(RAW, {**DEFAULTS, "MemberRoleName": longest + "r"})


@pytest.mark.parametrize("name", ["UserPath", "SecretNamePrefix", "PermissionsBoundary"])
def test_shared_parameters_are_the_hubs(name):
    hub = yaml_parse((ROOT / "template.yaml").read_text())["Parameters"][name]
    assert RAW["Parameters"][name] == hub


def test_the_member_role_name_takes_the_same_values_in_both_templates():
    hub = yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]["MemberRoleName"]
    member = RAW["Parameters"]["MemberRoleName"]
    assert [hub[k] for k in ("Default", "AllowedPattern", "MaxLength")] == [member[k] for k in ("Default", "AllowedPattern", "MaxLength")]


def test_allow_consumer_policy_is_off_unless_switched_on():
    spec = RAW["Parameters"]["AllowConsumerPolicy"]
    assert (spec["Default"], spec["AllowedValues"]) == ("false", ["true", "false"])


def test_every_parameter_is_in_one_group_of_the_console():
    groups = [p for group in RAW["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"] for p in group["Parameters"]]
    assert sorted(groups) == sorted(RAW["Parameters"])


def test_outputs_are_the_three_roles_the_key_and_its_alias():
    resources, resolver = member_stack.resolve(EVERYTHING, MEMBER, REGION)
    assert member_stack.outputs(RAW["Outputs"], resolver) == {
        "MemberRoleArn": f"arn:aws:iam::{MEMBER}:role/platform-key-rotation",
        "ReaderRoleArn": f"arn:aws:iam::{MEMBER}:role/platform-key-rotation-reader",
        "KeyCheckRoleArn": f"arn:aws:iam::{MEMBER}:role/platform-key-rotation-key-check",
        "SecretsKeyArn": f"arn:aws:kms:{REGION}:{MEMBER}:key/{member_stack.PLACEHOLDER_KEY_ID}",
        "SecretsKeyAlias": "alias/platform-key-rotation-secrets",
    }


# --- deployed into a moto member account ---------------------------------------------------------------------


@pytest.fixture
def organization():
    """An organization of the hub (the management account) and one member account, with AssumeRole as strict as
    AWS's (the role must exist and trust the caller); (member id, cross_account.Accounts, clients in the member
    account as its OrganizationAccountAccessRole, through which a StackSet or a person would deploy)."""
    with mock_aws(), cross_account.several_accounts() as accounts:
        member_id = cross_account.create_organization(["workloads"]).members["workloads"]
        yield member_id, accounts, lambda service: cross_account.client_in(member_id, service)


@pytest.mark.parametrize("parameters", [DEFAULTS, EVERYTHING], ids=["defaults", "all-options"])
def test_deployed_in_a_member_account_the_roles_key_and_alias_are_the_templates(organization, parameters):
    member_id, _, member_clients = organization
    if "PermissionsBoundary" in parameters:  # a managed policy and principals of the member account
        parameters = {**parameters, "PermissionsBoundary": f"arn:aws:iam::{member_id}:policy/platform-boundary",
                      "SecretReaders": parameters["SecretReaders"].replace(MEMBER, member_id)}
    iam = member_clients("iam")
    roles_before = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    out = member_stack.deploy_member(member_clients, parameters, member_id, REGION)
    expected = deployed(parameters, account_id=member_id)
    name = expected["MemberRole"]["RoleName"]
    key_id = out["SecretsKeyArn"].rsplit("/", 1)[1]
    assert out == {
        **{job.output: f"arn:aws:iam::{member_id}:role/{name}{job.suffix}" for job in JOBS.values()},
        "SecretsKeyArn": f"arn:aws:kms:{REGION}:{member_id}:key/{key_id}",
        "SecretsKeyAlias": f"alias/{name}-secrets",
    }

    assert {r["RoleName"] for r in iam.list_roles()["Roles"]} - roles_before == {name + job.suffix for job in JOBS.values()}
    for logical in JOBS:
        role_name = expected[logical]["RoleName"]
        role = iam.get_role(RoleName=role_name)["Role"]
        assert role["AssumeRolePolicyDocument"] == expected[logical]["AssumeRolePolicyDocument"]
        assert role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") == expected[logical].get("PermissionsBoundary")
        (policy,) = expected[logical]["Policies"]
        assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == [policy["PolicyName"]]
        assert iam.get_role_policy(RoleName=role_name, PolicyName=policy["PolicyName"])["PolicyDocument"] == policy["PolicyDocument"]
        assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []

    kms = member_clients("kms")
    key_policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert key_policy == expected["SecretsKey"]["KeyPolicy"]
    assert f"::{member_id}:role/{name}\"" in json.dumps(key_policy) and f"::{member_id}:role/{name}-key-check\"" in json.dumps(key_policy)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    (alias,) = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == out["SecretsKeyAlias"]]
    assert alias["TargetKeyId"] == key_id

    # in the member account, not in the hub's, where the deployment started
    hub_roles = [r["RoleName"] for r in boto3.client("iam", region_name=REGION).list_roles()["Roles"]]
    assert not {name + job.suffix for job in JOBS.values()} & set(hub_roles)


def test_each_hub_role_assumes_its_jobs_role_only_and_nobody_else_assumes_any(organization):
    member_id, accounts, member_clients = organization
    hub = cross_account.MANAGEMENT_ACCOUNT
    out = member_stack.deploy_member(member_clients, {"HubAccountId": hub}, member_id, REGION)
    member_roles = {logical: out[job.output] for logical, job in JOBS.items()}
    trusts_lambda = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})

    def as_session_of(role_arn: str):
        """An STS client of a session of ``role_arn``, as its service would have (no trust check)."""
        session = accounts.session(role_arn, name_of(role_arn))
        return boto3.client("sts", region_name=REGION, aws_access_key_id=session.access_key_id,
                            aws_secret_access_key=session.secret_access_key, aws_session_token=session.session_token)

    def assumable(sts) -> set[str]:
        """The member roles ``sts``'s caller may assume; each session it gets acts in the member account as the role."""
        assumed = set()
        for logical, role_arn in member_roles.items():
            try:
                credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="rotation")["Credentials"]
            except ClientError as refused:
                assert "not authorized to perform: sts:AssumeRole" in str(refused), refused
                continue
            identity = boto3.client("sts", region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                                    aws_secret_access_key=credentials["SecretAccessKey"],
                                    aws_session_token=credentials["SessionToken"]).get_caller_identity()
            assert identity["Arn"] == f"arn:aws:sts::{member_id}:assumed-role/{name_of(role_arn)}/rotation"
            assumed.add(logical)
        return assumed

    hub_iam = boto3.client("iam", region_name=REGION)

    def hub_role(role_name: str) -> str:
        return hub_iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trusts_lambda)["Role"]["Arn"]

    for logical, job in JOBS.items():
        for name in job.hub_roles:
            assert assumable(as_session_of(hub_role(f"iam-key-rotation-member-hub-{name}"))) == {logical}, name
    # the hub's other roles, and hub roles named as the member's
    for stranger in ("iam-key-rotation-member-hub-report", "iam-key-rotation-member", "iam-key-rotation-member-reader",
                     "iam-key-rotation-member-key-check", "admin"):
        assert assumable(as_session_of(hub_role(stranger))) == set(), stranger
    # the member's own roles (no role chains into another), and a member role named as the hub's state machine's
    impostor = member_clients("iam").create_role(RoleName="iam-key-rotation-member-hub-state-machine",
                                                 AssumeRolePolicyDocument=trusts_lambda)["Role"]["Arn"]
    for role_arn in [*member_roles.values(), impostor]:
        assert assumable(as_session_of(role_arn)) == set(), role_arn
    assert assumable(boto3.client("sts", region_name=REGION)) == set()  # the hub account's root


def test_a_deployment_through_another_accounts_clients_is_refused(organization):
    member_id, _, member_clients = organization
    with pytest.raises(ValueError, match=f"not in the member account {member_id}"):
        member_stack.deploy_member(lambda service: boto3.client(service, region_name=REGION), DEFAULTS, member_id, REGION)
    names = [r["RoleName"] for r in member_clients("iam").list_roles()["Roles"]]
    assert not [n for n in names if n.startswith("iam-key-rotation-member")], names


def test_without_the_hub_account_nothing_is_created(organization):
    member_id, _, member_clients = organization
    roles_before = member_clients("iam").list_roles()["Roles"]
    with pytest.raises(ParameterError, match="HubAccountId"):
        member_stack.deploy_member(member_clients, {}, member_id, REGION)
    assert member_clients("iam").list_roles()["Roles"] == roles_before and member_clients("kms").list_keys()["Keys"] == []
