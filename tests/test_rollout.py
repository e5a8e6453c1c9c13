"""The organization roll-out of docs/organizations.md, run as written on the emulator. Every `aws` command of the
section (its shell blocks, command substitutions included, and the ones its prose names) is read as the AWS CLI
reads it (tests/aws_cli_reader.py) against botocore's model of the service: an option the API lacks, a value it
refuses or a required one left out fails here. The StackSet commands are then made through boto3 on moto: an
instance in every member account (not in the management account: cross_account restores that), moto's
CloudFormation creates the real member/template.yaml's resources there, and the hub's next run manages every
account. The doc's example ids stand for the emulator's: 111111111111 for the hub's account, r-abcd for the
organization's root.

What moto cannot run is checked for what it says: the Organizations delegation policy allows exactly the actions
the hub's planning role is given (moto has no put-resource-policy), `aws cloudformation deploy` (a CLI command, not
an API) names the member template and its parameters, and `sam deploy` the hub's. What only AWS can show is listed
in docs/organizations.md ("What the emulator shows, and what needs AWS")."""

import itertools
import json
import re
import shlex

import aws_cli_reader
import boto3
import pytest
from samtranslator.yaml_helper import yaml_parse

from emulator import cross_account, member_stack, stack
from test_rotation_workflow import emulate  # noqa: F401  a fixture: every run checked for the invariants and leaks

ROOT = stack.ROOT
DOC = ROOT / "docs" / "organizations.md"
DOC_HUB = "111111111111"
DOC_ROOT = "r-abcd"


def rollout_section() -> str:
    return DOC.read_text().split("## Roll-out", 1)[1].split("\n## ", 1)[0]


def rollout_commands() -> list[list[str]]:
    """Each command of the roll-out section's ```sh blocks, as the shell splits it (continuation lines joined, a
    command substitution `$(...)` taken out as a command of its own)."""
    section = rollout_section()
    commands, pending = [], ""
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            pending += line + "\n"
            try:
                words = shlex.split(pending)
            except ValueError:  # a quoted value goes on over lines
                continue
            pending = ""
            while any(w.startswith("$(") for w in words):
                at = next(i for i, w in enumerate(words) if w.startswith("$("))
                end = next(i for i, w in enumerate(words[at:], at) if w.rstrip(";").endswith(")"))
                commands.append([words[at][2:], *words[at + 1 : end], words[end].rstrip(";")[:-1]])
                words = words[:at] + ["<substituted>"] + words[end + 1 :]
            while "&&" in words:
                commands.append(words[: words.index("&&")])
                words = words[words.index("&&") + 1 :]
            if words:
                commands.append(words)
    return commands


def inline_commands() -> list[list[str]]:
    """The `aws ...` commands the roll-out section's prose names in backticks."""
    section = rollout_section()
    prose = re.sub(r"```.*?```", "", section, flags=re.S)
    return [shlex.split(c) for c in re.findall(r"`(aws [^`]+)`", prose.replace("\n", " "))]


def aws_call(argv: list[str]) -> tuple[str, str, dict]:
    return aws_cli_reader.aws_call(argv, files=ROOT)


def _in_the_emulator(argv: list[str], root_id: str) -> list[str]:
    return [a.replace(DOC_HUB, stack.ACCOUNT_ID).replace(DOC_ROOT, root_id) for a in argv]


def parameter_overrides(argv: list[str]) -> dict[str, str]:
    """The `Key=Value` words after --parameter-overrides (sam deploy, aws cloudformation deploy), up to the next option."""
    given = argv[argv.index("--parameter-overrides") + 1 :]
    return dict(a.split("=", 1) for a in itertools.takewhile(lambda a: not a.startswith("--"), given))


def by_command(*names):
    found = [c for c in rollout_commands() if c[:3] in [n.split() for n in names]]
    assert found, f"the roll-out no longer shows {names}"
    return found


# --- the reader of the commands is strict --------------------------------------------------------------------------


def test_the_command_reader_follows_the_cli_and_refuses_what_it_would():
    service, method, parameters = aws_call(shlex.split(
        "aws cloudformation create-stack-instances --stack-set-name s --regions us-east-1 eu-west-1 "
        "--deployment-targets OrganizationalUnitIds=ou-1,ou-2,Accounts=123,AccountFilterType=INTERSECTION "
        "--operation-preferences MaxConcurrentCount=10 --output json --no-cli-pager"))
    assert (service, method) == ("cloudformation", "create_stack_instances")
    assert parameters == {"StackSetName": "s", "Regions": ["us-east-1", "eu-west-1"], "DeploymentTargets": {
        "OrganizationalUnitIds": ["ou-1", "ou-2"], "Accounts": ["123"], "AccountFilterType": "INTERSECTION"},
        "OperationPreferences": {"MaxConcurrentCount": 10}}
    assert aws_call(shlex.split("aws cloudformation delete-stack-instances --stack-set-name s --regions us-east-1 "
                                "--accounts 1 --no-retain-stacks"))[2]["RetainStacks"] is False
    assert aws_call(shlex.split("aws cloudformation create-stack-set --stack-set-name s "
                                "--auto-deployment Enabled=True,RetainStacksOnAccountRemoval=false"))[2]["AutoDeployment"] == {
        "Enabled": True, "RetainStacksOnAccountRemoval": False}
    for wrong in ("aws cloudformation create-stack-set --stack-set-nme s",  # no such option
                  "aws cloudformation create-stack-set --stack-set-name s --permission-model SELF",  # not in the enum
                  "aws cloudformation create-stack-set --stack-set-name s --auto-deployment Enabled=yes",
                  "aws cloudformation create-stack-sets --stack-set-name s",  # no such command
                  "aws organizations put-resource-policy",  # --content is required
                  "aws cloudformation delete-stack-instances --stack-set-name s --regions r --retain-stacks true"):  # a flag
        with pytest.raises(ValueError):
            aws_call(shlex.split(wrong))


# --- the roll-out, as written ----------------------------------------------------------------------------------------


def test_the_stackset_commands_put_the_member_stack_in_every_member_account_and_the_next_run_manages_them(emulate):
    members = [{"name": name, "memberStack": False, "users": [{"name": "ci-deployer", "tags": {"KeyRotation": "enabled"},
                "keys": [{"ageDays": 85, "inSecret": True}]}]} for name in ("payments", "analytics")]
    aws = emulate({"start": "2026-01-05T06:00:00Z", "parameters": {"TargetAccounts": "ORGANIZATION"},
                   "organization": {"hubMemberStack": True, "accounts": members}})
    before = aws.scheduled_run()
    assert before.status == "FAILED" and "2 account(s) not reached" in before.cause  # no member stack yet

    root_id = boto3.client("organizations").list_roots()["Roots"][0]["Id"]
    for argv in by_command("aws cloudformation create-stack-set", "aws cloudformation create-stack-instances"):
        service, method, parameters = aws_call(_in_the_emulator(argv, root_id))
        getattr(boto3.client(service), method)(**parameters)

    (stack_set,) = [s["StackSetName"] for s in boto3.client("cloudformation").list_stack_sets()["Summaries"]]
    instances = boto3.client("cloudformation").list_stack_instances(StackSetName=stack_set)["Summaries"]
    assert sorted(i["Account"] for i in instances) == sorted(aws.member_accounts.values())  # not the management's
    for account_id in aws.member_accounts.values():  # moto's CloudFormation created the member stack's roles there
        roles = cross_account.client_in(account_id, "iam").list_roles()["Roles"]
        assert {r["RoleName"] for r in roles} >= {"iam-key-rotation-member", "iam-key-rotation-member-reader"}

    after = aws.scheduled_run()
    assert after.status == "SUCCEEDED", after.cause
    assert {(u["account"], u["outcome"]) for u in after.output["users"]} == {(a, "rotated") for a in aws.member_accounts.values()}


def test_the_member_stack_by_hand_names_the_member_template_and_its_parameters():
    (argv,) = by_command("aws cloudformation deploy")  # a CLI command (a change set), not an API: read, not made
    overrides = parameter_overrides(argv)
    assert argv[argv.index("--template-file") + 1] == "member/template.yaml"
    assert argv[argv.index("--capabilities") + 1] == "CAPABILITY_NAMED_IAM"  # its roles have names
    assert set(overrides) <= set(member_stack.template()["Parameters"])
    member_stack.resolve({k: v.replace(DOC_HUB, stack.ACCOUNT_ID) for k, v in overrides.items()}, stack.ACCOUNT_ID)


def test_the_delegation_policy_allows_exactly_what_the_hubs_planning_role_may_do():
    (argv,) = by_command("aws organizations put-resource-policy")
    aws_call(argv)  # a command the CLI has, with options it takes (moto does not implement it: not made)
    policy = json.loads(argv[argv.index("--content") + 1])
    (statement,) = policy["Statement"]
    hub = yaml_parse((ROOT / "template.yaml").read_text())
    (planning,) = [r for r in hub["Resources"].values() if "FindTheOrganizationsAccounts" in json.dumps(r)]
    granted = set(re.findall(r'"(organizations:\w+)"', json.dumps(planning)))
    assert planning["Type"] == "AWS::IAM::Role" and granted
    assert set(re.findall(r'"(organizations:\w+)"', json.dumps(hub["Resources"]))) == granted  # no other role has any
    assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": f"arn:aws:iam::{DOC_HUB}:root"}
    assert set(statement["Action"]) == granted


def test_every_command_of_the_rollout_is_one_its_tool_has_with_options_it_takes():
    commands = rollout_commands()
    aws = [c for c in commands if c[0] == "aws" and c[1:3] != ["cloudformation", "deploy"]]  # deploy: a CLI command
    assert ["aws", "secretsmanager", "list-secrets"] in [c[:3] for c in aws] and len(aws) >= 5
    named = inline_commands()  # start-execution, describe-resource-policy, activate-organizations-access
    assert len(named) >= 3
    for argv in aws + named:
        aws_call([a.replace("<StateMachineArn>", "arn:aws:states:us-east-1:111111111111:stateMachine:x") for a in argv])
    (deploy,) = [c for c in commands if c[:2] == ["sam", "deploy"]]
    overrides = parameter_overrides(deploy)
    assert set(overrides) <= set(yaml_parse((ROOT / "template.yaml").read_text())["Parameters"]), overrides
