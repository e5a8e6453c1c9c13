"""The key of a managed account's secrets in member/template.yaml: the account root administers it but cannot
decrypt; only the writer role, the key check role and the secrets' readers decrypt, and only through Secrets
Manager for the stack's secrets; the readers (SecretReaders) are the account's principals by default, as under
aws/secretsmanager, or the named roles and users, never a wildcard; the key rotates, outlives its stack and is
aliased after the role."""

import pytest
from test_member_template import (  # noqa: F401 (member is a fixture)
    DEFAULTS,
    JOBS,
    MEMBER,
    RAW,
    REGION,
    allows,
    as_list,
    deployed,
    key_statements,
    member,
    roles,
)

from emulator import member_stack
from emulator.stack import ParameterError

# Key policy actions that decrypt, or let a principal give itself decryption without changing the key policy.
DECRYPTING = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant")


def principals(statement: dict) -> list[str]:
    principal = statement["Principal"]
    return as_list(principal) if isinstance(principal, str) else as_list(principal.get("AWS", [])) + as_list(principal.get("Service", []))


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
