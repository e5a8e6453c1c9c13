"""Several accounts on the emulator (emulator/cross_account.py): a Step Functions hub in 123456789012 acting in
member accounts through a Task's Credentials, AssumeRole checking the role's trust policy, Lambda handlers running as
their function's role. Each divergence from moto is proven twice: it holds on the emulator, and plain moto (the
emulator without its strict patches) lets the opposite through."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import zipfile
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from emulator import cross_account
from emulator.cross_account import Caller, client_in, create_organization, suspend, trust_allows
from emulator.faithful_moto import Clock, faithful_moto
from emulator.runner import MOTO_CONFIG
from emulator.stack import client

START = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
HUB = "123456789012"
HUB_ROLE = f"arn:aws:iam::{HUB}:role/hub"
HUB_SESSION = f"arn:aws:sts::{HUB}:assumed-role/hub/StepFunctions"
TRUSTS_STEP_FUNCTIONS = {"Service": "states.amazonaws.com"}


@contextlib.contextmanager
def accounts(strict: bool, functions: dict | None = None):
    """A fresh moto with the hub's execution role, and an organization of one member account."""
    functions = functions if functions is not None else {}
    with mock_aws(config=MOTO_CONFIG), faithful_moto(Clock(START), functions, strict=strict) as recorder:
        client("iam").create_role(RoleName="hub", AssumeRolePolicyDocument=trust(TRUSTS_STEP_FUNCTIONS))
        organization = create_organization(["workloads"])
        yield organization.members["workloads"], recorder


def holds_on_the_emulator_and_not_on_plain_moto(check, **kwargs):
    with accounts(strict=True, **kwargs) as (member, recorder):
        check(member, recorder)
    with accounts(strict=False, **kwargs) as (member, recorder), pytest.raises(AssertionError):
        check(member, recorder)


def trust(principal, deny=None, condition=None) -> str:
    """A trust policy allowing ``principal`` to assume the role, on ``condition``; denying ``deny``."""
    allow = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if condition:
        allow["Condition"] = condition
    statements = [allow] + ([{"Effect": "Deny", "Principal": deny, "Action": "sts:*"}] if deny else [])
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def member_role(member: str, name: str, trust_policy: str) -> str:
    return client_in(member, "iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy)["Role"]["Arn"]


def users_in(account: str) -> list[str]:
    iam = client("iam") if account == HUB else client_in(account, "iam")
    return [u["UserName"] for u in iam.list_users()["Users"]]


_machines = itertools.count(1)


def hub_runs(definition: dict, execution_input: dict) -> tuple[dict, list[dict]]:
    """Start an execution of ``definition`` in the hub; its description and history once it has finished."""
    sfn, name = client("stepfunctions"), f"hub-{next(_machines)}"
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=HUB_ROLE)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name="run", input=json.dumps(execution_input))["executionArn"]
    return sfn.describe_execution(executionArn=arn), sfn.get_execution_history(executionArn=arn)["events"]


def create_user_as(role_arn: str | None = None, **state) -> dict:
    """One Task creating the IAM user made-by-the-hub with the Credentials of ``role_arn`` (or of ``$.role``)."""
    credentials = {"RoleArn": role_arn} if role_arn else {"RoleArn.$": "$.role"}
    task = {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:iam:createUser", "Parameters": {"UserName": "made-by-the-hub"},
        "Credentials": credentials, "End": True,
    }
    return {"StartAt": "Create", "States": {"Create": {**task, **state}}}


# --- a Task's Credentials -------------------------------------------------------------------------------------


def test_a_task_with_credentials_makes_its_call_in_the_account_of_their_role():
    def check(member, recorder):
        role = f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole"  # trusts the hub's account (its root)
        described, _ = hub_runs(create_user_as(role), {})

        assert described["status"] == "SUCCEEDED"
        assert users_in(member) == ["made-by-the-hub"]
        assert users_in(HUB) == []

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_a_trust_policy_naming_the_execution_role_lets_the_task_in_and_one_naming_another_account_does_not():
    def check(member, recorder):
        trusting = member_role(member, "trusts-the-hub-role", trust({"AWS": HUB_ROLE}))
        not_trusting = member_role(member, "trusts-another-account", trust({"AWS": "arn:aws:iam::999999999999:root"}))

        assert hub_runs(create_user_as(), {"role": trusting})[0]["status"] == "SUCCEEDED"
        assert users_in(member) == ["made-by-the-hub"]
        client_in(member, "iam").delete_user(UserName="made-by-the-hub")
        assert hub_runs(create_user_as(), {"role": not_trusting})[0]["status"] == "FAILED"
        assert users_in(member) == [] and users_in(HUB) == []

    holds_on_the_emulator_and_not_on_plain_moto(check)


REFUSING = {
    "missing": None,
    "trusting another role": trust({"AWS": f"arn:aws:iam::{HUB}:role/someone-else"}),
    "trusting a service only": trust(TRUSTS_STEP_FUNCTIONS),
    "denying what it allows": trust({"AWS": HUB_ROLE}, deny={"AWS": HUB}),
    "trusting another principal arn": trust(
        {"AWS": HUB}, condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{HUB}:role/deploy-*"}}
    ),
    "with a condition it cannot evaluate": trust(
        {"AWS": HUB_ROLE}, condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    ),
}


@pytest.mark.parametrize("trust_policy", REFUSING.values(), ids=REFUSING.keys())
def test_a_role_that_is_missing_or_does_not_trust_the_execution_role_fails_the_task_with_access_denied(trust_policy):
    def check(member, recorder):
        role = f"arn:aws:iam::{member}:role/the-role"
        client("iam").create_role(RoleName="someone-else", AssumeRolePolicyDocument=trust(TRUSTS_STEP_FUNCTIONS))
        if trust_policy:
            member_role(member, "the-role", trust_policy)
        described, events = hub_runs(create_user_as(), {"role": role})

        assert described["status"] == "FAILED"
        (failed,) = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
        assert failed["error"] == "States.TaskFailed"
        assert failed["cause"] == f"User: {HUB_SESSION} is not authorized to perform: sts:AssumeRole on resource: {role}"
        assert (described["error"], described["cause"]) == (failed["error"], failed["cause"])
        assert users_in(member) == [] and users_in(HUB) == []  # the call landed nowhere

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_refused_credentials_are_retried_and_caught_like_any_task_failure():
    retried_and_caught = create_user_as(
        Retry=[{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2}],
        Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Caught"}],
    )
    retried_and_caught["States"]["Create"].pop("End")
    retried_and_caught["States"]["Create"]["Next"] = "Caught"
    retried_and_caught["States"]["Caught"] = {"Type": "Pass", "End": True}

    def check(member, recorder):
        role = f"arn:aws:iam::{member}:role/missing"
        described, _ = hub_runs(retried_and_caught, {"role": role})

        assert described["status"] == "SUCCEEDED"
        assert json.loads(described["output"]).get("failure") == {
            "Error": "States.TaskFailed",
            "Cause": f"User: {HUB_SESSION} is not authorized to perform: sts:AssumeRole on resource: {role}",
        }
        assert recorder.retry_delays == [1, 2]

    holds_on_the_emulator_and_not_on_plain_moto(check)


def test_a_task_without_credentials_acts_in_the_hub_as_before():
    def check(member, recorder):
        definition = create_user_as()
        definition["States"]["Create"].pop("Credentials")
        assert hub_runs(definition, {})[0]["status"] == "SUCCEEDED"
        assert users_in(HUB) == ["made-by-the-hub"] and users_in(member) == []

    for strict in (True, False):
        with accounts(strict=strict) as (member, recorder):
            check(member, recorder)


# --- STS AssumeRole -------------------------------------------------------------------------------------------


def error_of(call) -> dict | None:
    try:
        call()
    except ClientError as error:
        return error.response
    return None


def test_assume_role_needs_an_existing_role_that_trusts_the_caller():
    def check(member, recorder):
        sts = client("sts")  # the emulator's own keys: the hub account's root
        workloads = f"arn:aws:iam::{member}:role/OrganizationAccountAccessRole"
        assumed = sts.assume_role(RoleArn=workloads, RoleSessionName="admin")["AssumedRoleUser"]["Arn"]
        assert assumed == f"arn:aws:sts::{member}:assumed-role/OrganizationAccountAccessRole/admin"

        missing = f"arn:aws:iam::{member}:role/missing"
        refused = error_of(lambda: sts.assume_role(RoleArn=missing, RoleSessionName="admin"))
        assert refused is not None
        assert (refused["Error"]["Code"], refused["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDenied", 403)
        assert refused["Error"]["Message"] == (
            f"User: arn:aws:iam::{HUB}:root is not authorized to perform: sts:AssumeRole on resource: {missing}"
        )

    holds_on_the_emulator_and_not_on_plain_moto(check)


SESSION_OF_HUB = Caller(HUB_SESSION, HUB, HUB_ROLE, (HUB, "hub"))
USER_OF_MEMBER = Caller("arn:aws:iam::210987654321:user/ci/deployer", "210987654321", "arn:aws:iam::210987654321:user/ci/deployer")
TRUSTS = [  # (trust policy, caller, allowed)
    (trust("*"), USER_OF_MEMBER, True),
    (trust({"AWS": "*"}), SESSION_OF_HUB, True),
    (trust({"AWS": HUB}), SESSION_OF_HUB, True),
    (trust({"AWS": f"arn:aws:iam::{HUB}:root"}), SESSION_OF_HUB, True),
    (trust({"AWS": f"arn:aws:iam::{HUB}:root"}), USER_OF_MEMBER, False),
    (trust({"AWS": f"arn:aws:iam::{HUB}:role/service-role/hub"}), SESSION_OF_HUB, True),  # a role's path is not in its session's ARN
    (trust({"AWS": f"arn:aws:iam::{HUB}:role/hub2"}), SESSION_OF_HUB, False),
    (trust({"AWS": [f"arn:aws:iam::{HUB}:role/other", "arn:aws:iam::210987654321:user/ci/deployer"]}), USER_OF_MEMBER, True),
    (trust({"AWS": HUB_SESSION}), SESSION_OF_HUB, True),
    (trust(TRUSTS_STEP_FUNCTIONS), SESSION_OF_HUB, False),
    (trust({"AWS": "*"}, condition={"StringEquals": {"aws:PrincipalAccount": HUB}}), SESSION_OF_HUB, True),
    (trust({"AWS": "*"}, condition={"StringEquals": {"aws:PrincipalAccount": HUB}}), USER_OF_MEMBER, False),
    (trust({"AWS": "*"}, condition={"StringLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/h?b"]}}), SESSION_OF_HUB, True),
    (trust({"AWS": "*"}, condition={"ArnEquals": {"aws:principalarn": "arn:aws:iam::*:user/ci/*"}}), USER_OF_MEMBER, True),
    (trust({"AWS": "*"}, condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}), SESSION_OF_HUB, False),
    (trust({"AWS": "*"}, deny={"AWS": HUB}), SESSION_OF_HUB, False),
    (trust({"AWS": "*"}, deny={"AWS": HUB}), USER_OF_MEMBER, True),
    (json.dumps({"Statement": {"Effect": "Allow", "Principal": {"AWS": HUB}, "Action": ["sts:TagSession"]}}), SESSION_OF_HUB, False),
    (json.dumps({"Statement": {"Effect": "Allow", "Principal": {"AWS": HUB}, "Action": "STS:assume*"}}), SESSION_OF_HUB, True),
    (json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"},
                               {"Effect": "Deny", "NotPrincipal": {"AWS": HUB}, "Action": "*"}]}), SESSION_OF_HUB, False),
]


@pytest.mark.parametrize("trust_policy, caller, allowed", TRUSTS)
def test_a_trust_policy_lets_in_the_principals_it_names(trust_policy, caller, allowed):
    assert trust_allows(trust_policy, caller) is allowed


# --- Lambda functions run as their role -----------------------------------------------------------------------

PROBE = '''
import os

import boto3
from botocore.exceptions import ClientError


def handler(event, context):
    sts = boto3.client("sts")
    answer = {"me": sts.get_caller_identity()["Arn"], "key": os.environ["AWS_ACCESS_KEY_ID"]}
    for name, role in event.items():
        try:
            answer[name] = sts.assume_role(RoleArn=role, RoleSessionName="probe")["AssumedRoleUser"]["Arn"]
        except ClientError as error:
            answer[name] = error.response["Error"]["Message"]
    return answer
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A Lambda function's code that says who it runs as and what it may assume: {"probe": (directory, handler)}."""
    code = tmp_path_factory.mktemp("probe")
    (code / "cross_account_probe.py").write_text(PROBE)
    return {"probe": (code, "cross_account_probe.handler")}


def deploy_probe():
    role = client("iam").create_role(RoleName="probe-role", AssumeRolePolicyDocument=trust({"Service": "lambda.amazonaws.com"}))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("cross_account_probe.py", PROBE)
    client("lambda").create_function(
        FunctionName="probe", Runtime="python3.12", Role=role["Role"]["Arn"], Handler="cross_account_probe.handler",
        Code={"ZipFile": archive.getvalue()},
    )


def invoke_probe(event: dict) -> dict:
    response = client("lambda").invoke(FunctionName="probe", Payload=json.dumps(event))
    return json.loads(response["Payload"].read())


def test_a_lambda_handler_runs_as_its_function_role_and_assumes_roles_as_it(probe):
    def check(member, recorder):
        deploy_probe()
        trusting = member_role(member, "trusts-the-probe", trust({"AWS": f"arn:aws:iam::{HUB}:role/probe-role"}))
        not_trusting = member_role(member, "trusts-the-hub", trust({"AWS": HUB_ROLE}))

        answer = invoke_probe({"trusting": trusting, "not trusting": not_trusting})

        session = f"arn:aws:sts::{HUB}:assumed-role/probe-role/probe"
        assert answer.get("me") == session
        assert answer["key"].startswith("ASIA")
        assert answer["trusting"] == f"arn:aws:sts::{member}:assumed-role/trusts-the-probe/probe"
        assert answer["not trusting"] == f"User: {session} is not authorized to perform: sts:AssumeRole on resource: {not_trusting}"
        assert invoke_probe({}) == {"me": session, "key": answer["key"]}  # the same session for the next invocation

    holds_on_the_emulator_and_not_on_plain_moto(check, functions=probe)


# --- an organization ------------------------------------------------------------------------------------------


def test_an_organization_has_members_with_ids_from_their_names_each_trusting_the_management_account():
    def organization() -> dict[str, str]:
        with accounts(strict=True) as (workloads, _):
            audit = cross_account.create_member("audit")
            listed = client("organizations").list_accounts()["Accounts"]
            assert {a["Id"]: a["Name"] for a in listed} == {HUB: "master", workloads: "workloads", audit: "audit"}
            for member in (workloads, audit):
                role = client_in(member, "iam").get_role(RoleName="OrganizationAccountAccessRole")["Role"]
                assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{HUB}:root"}
            suspend(audit)
            assert client("organizations").describe_account(AccountId=audit)["Account"]["Status"] == "SUSPENDED"
            return {"workloads": workloads, "audit": audit}

    first, again = organization(), organization()
    assert first == again
    assert len(set(first.values()) | {HUB}) == 3 and all(len(i) == 12 and i.isdigit() for i in first.values())


def test_client_in_refuses_an_account_whose_role_does_not_trust_the_management_account():
    with accounts(strict=True) as (member, _):
        with pytest.raises(PermissionError, match="is not authorized to perform: sts:AssumeRole"):
            client_in("999999999999", "iam")
        assert client_in(member, "sts").get_caller_identity()["Arn"] == (
            f"arn:aws:sts::{member}:assumed-role/OrganizationAccountAccessRole/emulator"
        )


def test_listing_accounts_outside_any_organization_is_refused_as_aws_refuses_it():
    """A hub with TargetAccounts=ORGANIZATION in an account that is in no organization: AWS refuses ListAccounts;
    moto lists no account, and the hub would manage nothing without a word."""

    def check():
        with pytest.raises(ClientError, match="AWSOrganizationsNotInUseException"):
            client("organizations").list_accounts()

    with mock_aws(config=MOTO_CONFIG), faithful_moto(Clock(START), {}, strict=True):
        check()
    with mock_aws(config=MOTO_CONFIG), faithful_moto(Clock(START), {}, strict=False), pytest.raises(pytest.fail.Exception):
        check()


def test_a_service_managed_stackset_deploys_to_the_member_accounts_and_never_to_the_management_account():
    """AWS: "StackSets doesn't deploy stack instances to the organization's management account, even if the
    management account is in your organization or in an OU". moto deploys there too."""
    topic = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})

    def check(member, recorder):
        cloudformation = client("cloudformation")
        cloudformation.create_stack_set(StackSetName="s", TemplateBody=topic, PermissionModel="SERVICE_MANAGED",
                                        AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False})
        root = client("organizations").list_roots()["Roots"][0]["Id"]
        cloudformation.create_stack_instances(StackSetName="s", DeploymentTargets={"OrganizationalUnitIds": [root]},
                                              Regions=["us-east-1"])
        instances = cloudformation.list_stack_instances(StackSetName="s")["Summaries"]
        assert [i["Account"] for i in instances] == [member]

    holds_on_the_emulator_and_not_on_plain_moto(check)
