"""member/template.yaml, the stack a StackSet deploys in every managed account: linted, checkov-clean, the member
role trusted by the hub's six roles only and holding exactly the hub's least privilege in that account, the key
of the account's secrets decryptable only through Secrets Manager, and deployed into a moto member account
through emulator/member_stack.py."""

import json
import subprocess
import sys
from collections import defaultdict
from fnmatch import fnmatchcase
from pathlib import Path

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
HUB_ROLES = ("state-machine", "plan-run", "plan-batch", "key-status", "reconcile", "key-check")
BOUNDARY = f"arn:aws:iam::{MEMBER}:policy/platform-boundary"

DEFAULTS = {"HubAccountId": HUB}
EVERYTHING = {
    "HubAccountId": HUB,
    "MemberRoleName": "platform-key-rotation",
    "UserPath": "/service-accounts/",
    "SecretNamePrefix": "rotated/",
    "PermissionsBoundary": BOUNDARY,
    "AllowConsumerPolicy": "true",
}
# Actions IAM and Secrets Manager offer no resource-level permission for: "*" is their only possible Resource.
NO_RESOURCE_SCOPE = {"iam:GetAccountAuthorizationDetails", "secretsmanager:ListSecrets"}
# Key policy actions that decrypt, or let a principal give itself decryption without changing the key policy.
DECRYPTING = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant")


def as_list(value):
    return value if isinstance(value, list) else [value]


def deployed(parameters: dict, account_id: str = MEMBER, region: str = REGION) -> dict:
    """Logical id -> resolved properties of every resource the parameters create in the member account."""
    resources, resolver = member_stack.resolve(parameters, account_id, region)
    return {logical: {"Type": r["Type"], **resolver.resolve(r.get("Properties", {}))} for logical, r in resources.items()}


@pytest.fixture(scope="module", params=[DEFAULTS, EVERYTHING], ids=["defaults", "all-options"])
def member(request):
    return {**{k: str(v.get("Default", "")) for k, v in RAW["Parameters"].items()}, **request.param}, deployed(request.param)


def the_role(resources: dict) -> dict:
    (role,) = [r for r in resources.values() if r["Type"] == "AWS::IAM::Role"]
    return role


def role_statements(role: dict) -> list[dict]:
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


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


def expected_grants(p: dict) -> dict[str, str]:
    """The contract: each action the member role holds, and the one resource it holds it on."""
    users = f"arn:aws:iam::{MEMBER}:user/*"
    managed = f"arn:aws:iam::{MEMBER}:user{p['UserPath']}*"
    secrets = f"arn:aws:secretsmanager:{REGION}:{MEMBER}:secret:{p['SecretNamePrefix']}*"
    grants = {
        # reads
        "iam:GetAccountAuthorizationDetails": "*", "secretsmanager:ListSecrets": "*",
        "iam:GetUser": users, "iam:ListAccessKeys": users,
        "iam:GetAccessKeyLastUsed": managed,
        "secretsmanager:DescribeSecret": secrets, "secretsmanager:GetResourcePolicy": secrets,
        "secretsmanager:GetSecretValue": secrets,
        # writes
        "iam:CreateAccessKey": managed, "iam:UpdateAccessKey": managed, "iam:DeleteAccessKey": managed,
        "iam:TagUser": managed, "iam:UntagUser": managed,
        "secretsmanager:PutSecretValue": secrets, "secretsmanager:CreateSecret": secrets,
    }
    if p["AllowConsumerPolicy"] == "true":
        grants["secretsmanager:PutResourcePolicy"] = secrets
    return grants


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


# --- the member role -----------------------------------------------------------------------------------------


def test_the_role_is_named_by_MemberRoleName_and_trusted_by_the_hubs_six_roles_only(member):
    parameters, resources = member
    role = the_role(resources)
    assert role["RoleName"] == parameters["MemberRoleName"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert (trust["Effect"], trust["Action"]) == ("Allow", "sts:AssumeRole")
    assert list(trust["Principal"]) == ["AWS"], "roles only: no service, no federated principal"
    hub_roles = {f"arn:aws:iam::{HUB}:role/{parameters['MemberRoleName']}-hub-{name}" for name in HUB_ROLES}
    assert sorted(trust["Principal"]["AWS"]) == sorted(hub_roles)
    for principal in trust["Principal"]["AWS"]:
        assert "*" not in principal and not principal.endswith(":root") and f"::{MEMBER}:" not in principal, principal


def test_every_grant_is_the_contracts_in_this_account_only(member):
    parameters, resources = member
    statements = role_statements(the_role(resources))
    granted = defaultdict(list)
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        for action in as_list(statement["Action"]):
            granted[action] += as_list(statement["Resource"])
    assert dict(granted) == {action: [resource] for action, resource in expected_grants(parameters).items()}
    for action, resources_of in granted.items():
        if "*" in resources_of:
            assert action in NO_RESOURCE_SCOPE, f"{action} on *"


def test_the_consumer_policy_is_writable_only_when_AllowConsumerPolicy_is_true():
    puts = lambda parameters: [s for s in role_statements(the_role(deployed(parameters))) if allows(s, "secretsmanager:PutResourcePolicy")]  # noqa: E731
    assert puts(DEFAULTS) == [] and puts({**DEFAULTS, "AllowConsumerPolicy": "false"}) == []
    (put,) = puts({**DEFAULTS, "AllowConsumerPolicy": "true"})
    assert put["Resource"] == f"arn:aws:secretsmanager:{REGION}:{MEMBER}:secret:iam-key-rotation/*"


def test_no_action_wildcard_and_every_statement_says_why(member):
    _, resources = member
    role = the_role(resources)
    for statement in role_statements(role) + role["AssumeRolePolicyDocument"]["Statement"]:
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"grants {action}"
    for statements in (role_statements(role), key_statements(resources)):
        sids = [s.get("Sid", "") for s in statements]
        assert all(len(sid) > 10 for sid in sids) and len(set(sids)) == len(sids), sids


def test_only_the_workflows_own_tags_are_written_and_no_other_grant_has_a_condition(member):
    _, resources = member
    for statement in role_statements(the_role(resources)):
        if set(as_list(statement["Action"])) & {"iam:TagUser", "iam:UntagUser"}:
            assert sorted(statement["Action"]) == ["iam:TagUser", "iam:UntagUser"]
            assert statement["Condition"] == {
                "ForAllValues:StringLike": {"aws:TagKeys": ["key-rotation:inactive-since:*", "key-rotation:secret"]}
            }
        else:
            assert "Condition" not in statement, statement


def test_the_permissions_boundary_applies_when_given(member):
    parameters, resources = member
    assert the_role(resources).get("PermissionsBoundary") == (parameters["PermissionsBoundary"] or None)


def test_the_member_role_holds_what_the_hubs_roles_hold_in_the_account_they_manage():
    """One role, two templates: every IAM and Secrets Manager grant of the hub template (only its own account's
    member role, MemberRole, holds any) is the member template's role's, action by action, for the same path,
    prefix and consumer setting, and both trust the same six hub roles. A grant covered by a broader one of the
    same action counts once."""
    consumer = f"arn:aws:iam::{stack.ACCOUNT_ID}:role/payments-service"
    for path, prefix, allow_consumer in (("/", "iam-key-rotation/", "false"), ("/service-accounts/", "rotated/", "true")):
        hub_parameters = {"UserPath": path, "SecretNamePrefix": prefix, **({"ConsumerPrincipalArn": consumer} if allow_consumer == "true" else {})}
        resources, resolver = stack.resolve(hub_parameters)
        hub = [
            s for logical, r in resources.items() if r["Type"] == "AWS::IAM::Role"
            for p in resolver.resolve(r["Properties"]).get("Policies", []) for s in p["PolicyDocument"]["Statement"]
        ]
        member_parameters = {"HubAccountId": HUB, "UserPath": path, "SecretNamePrefix": prefix, "AllowConsumerPolicy": allow_consumer}
        member_role = the_role(deployed(member_parameters, account_id=stack.ACCOUNT_ID, region=stack.REGION))
        assert grants_in_the_managed_account(role_statements(member_role)) == grants_in_the_managed_account(hub), (path, prefix)
        hub_member = resolver.resolve(resources["MemberRole"]["Properties"])
        assert hub_member["RoleName"] == member_role["RoleName"]
        (hub_trust,), (trust,) = hub_member["AssumeRolePolicyDocument"]["Statement"], member_role["AssumeRolePolicyDocument"]["Statement"]
        assert set(hub_trust["Principal"]["AWS"]) == {arn.replace(HUB, stack.ACCOUNT_ID) for arn in trust["Principal"]["AWS"]}


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


def test_only_the_role_and_this_accounts_principals_through_secrets_manager_decrypt_rotated_secrets(member):
    parameters, resources = member
    role_arn = f"arn:aws:iam::{MEMBER}:role/{parameters['MemberRoleName']}"
    secrets = f"arn:aws:secretsmanager:{REGION}:{MEMBER}:secret:{parameters['SecretNamePrefix']}*"
    through_secrets_manager = {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"},
                               "StringLike": {"kms:EncryptionContext:SecretARN": secrets}}
    statements = key_statements(resources)
    decrypting = {p: s for s in statements if any(allows(s, a) for a in DECRYPTING) for p in principals(s)}
    assert set(decrypting) == {role_arn, "*"}
    (role_grant,) = [s for s in statements if role_arn in principals(s)]
    assert sorted(role_grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert role_grant["Condition"] == through_secrets_manager
    anyone = decrypting["*"]
    assert anyone["Action"] == "kms:Decrypt", "principals of the account read secrets; only the member role writes them"
    assert anyone["Condition"] == {
        "StringEquals": {"kms:CallerAccount": MEMBER, **through_secrets_manager["StringEquals"]},
        "StringLike": through_secrets_manager["StringLike"],
    }
    writers = {p for s in statements if allows(s, "kms:GenerateDataKey") or allows(s, "kms:Encrypt") for p in principals(s)}
    assert writers == {role_arn}


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


def test_a_member_role_name_leaves_room_for_the_hubs_role_names():
    spec = RAW["Parameters"]["MemberRoleName"]
    assert (spec["Default"], spec["AllowedPattern"], spec["MaxLength"]) == ("iam-key-rotation-member", r"^[\w-]+$", 40)
    longest = "r" * 40
    (trust,) = the_role(deployed({**DEFAULTS, "MemberRoleName": longest}))["AssumeRolePolicyDocument"]["Statement"]
    assert max(len(arn.rsplit("/", 1)[1]) for arn in trust["Principal"]["AWS"]) <= 64  # IAM's limit on a role name
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


def test_outputs_are_the_role_the_key_and_its_alias():
    resources, resolver = member_stack.resolve(EVERYTHING, MEMBER, REGION)
    assert member_stack.outputs(RAW["Outputs"], resolver) == {
        "MemberRoleArn": f"arn:aws:iam::{MEMBER}:role/platform-key-rotation",
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
def test_deployed_in_a_member_account_the_role_key_and_alias_are_the_templates(organization, parameters):
    member_id, _, member_clients = organization
    if "PermissionsBoundary" in parameters:  # a managed policy of the member account
        parameters = {**parameters, "PermissionsBoundary": f"arn:aws:iam::{member_id}:policy/platform-boundary"}
    out = member_stack.deploy_member(member_clients, parameters, member_id, REGION)
    expected = deployed(parameters, account_id=member_id)
    role_name = expected["MemberRole"]["RoleName"]
    key_id = out["SecretsKeyArn"].rsplit("/", 1)[1]
    assert out == {
        "MemberRoleArn": f"arn:aws:iam::{member_id}:role/{role_name}",
        "SecretsKeyArn": f"arn:aws:kms:{REGION}:{member_id}:key/{key_id}",
        "SecretsKeyAlias": f"alias/{role_name}-secrets",
    }

    iam = member_clients("iam")
    role = iam.get_role(RoleName=role_name)["Role"]
    assert role["AssumeRolePolicyDocument"] == expected["MemberRole"]["AssumeRolePolicyDocument"]
    assert role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") == expected["MemberRole"].get("PermissionsBoundary")
    (policy,) = expected["MemberRole"]["Policies"]
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == [policy["PolicyName"]]
    assert iam.get_role_policy(RoleName=role_name, PolicyName=policy["PolicyName"])["PolicyDocument"] == policy["PolicyDocument"]

    kms = member_clients("kms")
    key_policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert key_policy == expected["SecretsKey"]["KeyPolicy"] and f"::{member_id}:role/{role_name}" in json.dumps(key_policy)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    (alias,) = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == out["SecretsKeyAlias"]]
    assert alias["TargetKeyId"] == key_id

    # in the member account, not in the hub's, where the deployment started
    assert role_name not in [r["RoleName"] for r in boto3.client("iam", region_name=REGION).list_roles()["Roles"]]


def test_the_hubs_six_roles_assume_the_member_role_and_nobody_else_does(organization):
    member_id, accounts, member_clients = organization
    hub = cross_account.MANAGEMENT_ACCOUNT
    out = member_stack.deploy_member(member_clients, {"HubAccountId": hub}, member_id, REGION)
    hub_iam = boto3.client("iam", region_name=REGION)
    trusts_lambda = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})

    def assume_as(role_name: str) -> str:
        """The account the member role's session acts in, assumed by a session of the hub's role ``role_name``."""
        arn = hub_iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trusts_lambda)["Role"]["Arn"]
        session = accounts.session(arn, role_name)
        sts = boto3.client("sts", region_name=REGION, aws_access_key_id=session.access_key_id,
                           aws_secret_access_key=session.secret_access_key, aws_session_token=session.session_token)
        credentials = sts.assume_role(RoleArn=out["MemberRoleArn"], RoleSessionName="rotation")["Credentials"]
        return boto3.client("sts", region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["SessionToken"]).get_caller_identity()["Account"]

    for name in HUB_ROLES:
        assert assume_as(f"iam-key-rotation-member-hub-{name}") == member_id, name
    for stranger in ("iam-key-rotation-member-hub-report", "iam-key-rotation-member", "admin"):
        with pytest.raises(ClientError, match="not authorized to perform: sts:AssumeRole"):
            assume_as(stranger)
    with pytest.raises(ClientError, match="not authorized to perform: sts:AssumeRole"):  # the hub account's root
        boto3.client("sts", region_name=REGION).assume_role(RoleArn=out["MemberRoleArn"], RoleSessionName="root")


def test_a_deployment_through_another_accounts_clients_is_refused(organization):
    member_id, _, member_clients = organization
    with pytest.raises(ValueError, match=f"not in the member account {member_id}"):
        member_stack.deploy_member(lambda service: boto3.client(service, region_name=REGION), DEFAULTS, member_id, REGION)
    assert "iam-key-rotation-member" not in [r["RoleName"] for r in member_clients("iam").list_roles()["Roles"]]


def test_without_the_hub_account_nothing_is_created(organization):
    member_id, _, member_clients = organization
    roles_before = member_clients("iam").list_roles()["Roles"]
    with pytest.raises(ParameterError, match="HubAccountId"):
        member_stack.deploy_member(member_clients, {}, member_id, REGION)
    assert member_clients("iam").list_roles()["Roles"] == roles_before and member_clients("kms").list_keys()["Keys"] == []
