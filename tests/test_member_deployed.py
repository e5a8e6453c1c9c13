"""member/template.yaml deployed into a moto member account of an organization through emulator/member_stack.py,
with AssumeRole as strict as AWS's: the roles, key and alias created are the template's, in the member account
and not the hub's; each hub role assumes its own job's role and nothing else does (the hub's other roles, the
member's own roles, the hub account's root); a deployment through another account's clients, or without the hub
account, creates nothing."""

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from test_member_template import DEFAULTS, EVERYTHING, JOBS, MEMBER, REGION, deployed, name_of

from emulator import cross_account, member_stack
from emulator.stack import ParameterError


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
