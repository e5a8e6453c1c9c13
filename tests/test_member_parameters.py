"""member/template.yaml's parameters and outputs: HubAccountId must be given as twelve digits; MemberRoleName
leaves room for every role name made from it and takes the same values as the hub template's, as do the shared
parameters; AllowConsumerPolicy is off unless switched on; every parameter is in one group of the console; the
outputs are the three roles, the key and its alias."""

import pytest
from samtranslator.yaml_helper import yaml_parse
from test_member_template import DEFAULTS, EVERYTHING, HUB, MEMBER, RAW, REGION, ROOT, deployed, name_of, roles, trusted

from emulator import member_stack
from emulator.stack import ParameterError


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
