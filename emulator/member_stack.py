"""Deploy member/template.yaml into a moto account, as CloudFormation (a StackSet instance) would.

The member stack is plain CloudFormation: the member roles the hub assumes (one per job), the KMS key of the
account's secrets and its alias. This module checks the parameter values as CloudFormation does, resolves the
template's intrinsics with emulator/stack.py's resolver for the member account's pseudo parameters, and
creates those resources through clients that act in that account.

What it does not emulate: IAM refuses a trust policy naming a role that does not exist (the hub's roles must
exist first); moto does not check principals, and neither does this module.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from samtranslator.yaml_helper import yaml_parse

from . import stack
from .stack import ParameterError, TemplateError

MEMBER_TEMPLATE = stack.ROOT / "member" / "template.yaml"
STACK_NAME = "iam-key-rotation-member"
# Before deployment the key's id is unknown: the AWS docs' example id stands in (deploy_member uses the real one).
PLACEHOLDER_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
# What this module can create, in the order that satisfies the template's references (role <- key <- alias).
CREATION_ORDER = ("AWS::IAM::Role", "AWS::KMS::Key", "AWS::KMS::Alias")

Clients = Callable[[str], Any]  # service name -> a boto3 client acting in the member account and region


@functools.cache
def _parsed(template_path: Path, text: str) -> dict:
    return yaml_parse(text)


def template(template_path: Path = MEMBER_TEMPLATE) -> dict:
    """The member template as CloudFormation reads it (short-form intrinsics expanded), a fresh copy."""
    return copy.deepcopy(_parsed(template_path, template_path.read_text()))


def pseudo_parameters(account_id: str, region: str, stack_name: str = STACK_NAME, partition: str = "aws") -> dict[str, str]:
    return {
        "AWS::AccountId": account_id,
        "AWS::Region": region,
        "AWS::Partition": partition,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/51af3dc0-da77-11e4-872e-1234567db123",
        "AWS::URLSuffix": "amazonaws.com",
    }


def parameter_values(cfn: dict, overrides: dict | None = None) -> dict[str, str]:
    """stack.parameter_values, plus what CloudFormation also enforces here: a parameter without a default must be
    given, and MinLength/MaxLength."""
    given = dict(overrides or {})
    for name, spec in cfn.get("Parameters", {}).items():
        if "Default" not in spec and name not in given:
            raise ParameterError(f"parameter {name} has no default: give it a value ({spec.get('Description', '')})")
    values = stack.parameter_values(cfn, given)
    for name, spec in cfn.get("Parameters", {}).items():
        if "MaxLength" in spec and len(values[name]) > int(spec["MaxLength"]):
            raise ParameterError(f"parameter {name}={values[name]!r} is longer than {spec['MaxLength']} characters")
        if "MinLength" in spec and len(values[name]) < int(spec["MinLength"]):
            raise ParameterError(f"parameter {name}={values[name]!r} is shorter than {spec['MinLength']} characters")
    return values


@dataclass
class AccountResolver(stack.Resolver):
    """stack.Resolver with the pseudo parameters of the account the stack is deployed in."""

    pseudo: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str):
        if name in self.pseudo and name not in self.parameters:
            return self.pseudo[name]
        return super().ref(name)


def resolve(
    overrides: dict | None, account_id: str, region: str = stack.REGION, template_path: Path = MEMBER_TEMPLATE
) -> tuple[dict, AccountResolver]:
    """The resources the parameter values create in ``account_id``, and a resolver for their properties
    (``resolver.resolve(resource["Properties"])`` is what CloudFormation would create; the key's id is a
    placeholder until deploy_member creates it)."""
    cfn = template(template_path)
    resolver = AccountResolver(parameter_values(cfn, overrides), pseudo=pseudo_parameters(account_id, region))
    for name, expr in cfn.get("Conditions", {}).items():  # in order: a condition may use an earlier one
        resolver.conditions[name] = bool(resolver.resolve(expr))
    resources = {
        logical: r for logical, r in cfn["Resources"].items() if "Condition" not in r or resolver.conditions[r["Condition"]]
    }
    unknown = sorted({r["Type"] for r in resources.values()} - set(CREATION_ORDER))
    if unknown:
        raise TemplateError(f"the emulator cannot deploy {', '.join(unknown)} (member_stack.py creates {', '.join(CREATION_ORDER)})")
    for logical, r in resources.items():
        resolver.physical[logical] = _physical_ids(logical, r, resolver)
    return resources, resolver


def outputs(cfn_outputs: dict, resolver: AccountResolver) -> dict[str, str]:
    return {name: resolver.resolve(output["Value"]) for name, output in cfn_outputs.items()}


def deploy_member(
    clients: Clients,
    parameters: dict,
    account_id: str,
    region: str = stack.REGION,
    template_path: Path = MEMBER_TEMPLATE,
) -> dict[str, str]:
    """Create the member stack's role (trust, inline policy, boundary), key (policy, rotation) and alias in the
    account ``clients`` act in, which must be ``account_id``; return the stack's outputs."""
    acting_in = clients("sts").get_caller_identity()["Account"]
    if acting_in != account_id:
        raise ValueError(f"the clients act in account {acting_in}, not in the member account {account_id}")
    resources, resolver = resolve(parameters, account_id, region, template_path)
    ordered = sorted(resources.items(), key=lambda item: CREATION_ORDER.index(item[1]["Type"]))
    for logical, resource in ordered:
        props = resolver.resolve(resource.get("Properties", {}))
        create = {"AWS::IAM::Role": _create_role, "AWS::KMS::Key": _create_key, "AWS::KMS::Alias": _create_alias}[resource["Type"]]
        resolver.physical[logical] = create(clients, props, resolver.physical[logical])
    return outputs(template(template_path).get("Outputs", {}), resolver)


def _create_role(clients: Clients, props: dict, physical: dict) -> dict:
    iam = clients("iam")
    optional = {
        key: props[key] for key in ("Description", "PermissionsBoundary", "Path", "MaxSessionDuration") if key in props
    }
    role = iam.create_role(
        RoleName=physical["Ref"], AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]), **optional
    )["Role"]
    for policy in props.get("Policies", []):
        iam.put_role_policy(
            RoleName=physical["Ref"], PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
        )
    for arn in props.get("ManagedPolicyArns", []):
        iam.attach_role_policy(RoleName=physical["Ref"], PolicyArn=arn)
    return {"Ref": role["RoleName"], "Arn": role["Arn"], "RoleId": role["RoleId"]}


def _create_key(clients: Clients, props: dict, physical: dict) -> dict:
    kms = clients("kms")
    key = kms.create_key(
        Policy=json.dumps(props["KeyPolicy"]),
        Description=props.get("Description", ""),
        KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
        KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
    )["KeyMetadata"]
    if str(props.get("EnableKeyRotation", "false")).lower() == "true":
        kms.enable_key_rotation(KeyId=key["KeyId"])
    return {"Ref": key["KeyId"], "Arn": key["Arn"], "KeyId": key["KeyId"]}


def _create_alias(clients: Clients, props: dict, physical: dict) -> dict:
    clients("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
    return {"Ref": props["AliasName"]}


def _physical_ids(logical: str, resource: dict, resolver: AccountResolver) -> dict[str, str]:
    props = resource.get("Properties", {})
    account, region, partition = (resolver.pseudo[f"AWS::{name}"] for name in ("AccountId", "Region", "Partition"))
    kind = resource["Type"]
    if kind == "AWS::IAM::Role":
        name = resolver.resolve(props.get("RoleName", f"{resolver.pseudo['AWS::StackName']}-{logical}"))
        path = resolver.resolve(props.get("Path", "/"))
        return {"Ref": name, "Arn": f"arn:{partition}:iam::{account}:role{path}{name}"}
    if kind == "AWS::KMS::Key":
        return {"Ref": PLACEHOLDER_KEY_ID, "Arn": f"arn:{partition}:kms:{region}:{account}:key/{PLACEHOLDER_KEY_ID}", "KeyId": PLACEHOLDER_KEY_ID}
    if kind == "AWS::KMS::Alias":
        return {"Ref": resolver.resolve(props["AliasName"])}
    raise TemplateError(f"the emulator cannot deploy {kind}")
