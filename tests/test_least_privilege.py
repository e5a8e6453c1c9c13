"""Least privilege and encryption as CloudFormation really gets them: the template through the SAM translator,
every intrinsic resolved for a parameter set, then each role, the key policy and the state machine checked.
Plus checkov over the translated template (its own virtualenv, installed by `make test`)."""

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import tool_cache

from emulator import stack

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT, REGION, STACK = stack.ACCOUNT_ID, stack.REGION, stack.STACK_NAME
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/*"
SECRETS_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:iam-key-rotation/*"
MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-rotation"
RUN_RECORDS = f"arn:aws:s3:::key-rotation-runs-{stack.PSEUDO_PARAMETERS['AWS::StackId'].rsplit('/', 1)[1]}/runs/*"
MEMBER = "iam-key-rotation-member"
# The member roles of the stack's own account (the same as member/template.yaml's), one per job: logical id ->
# (role name, the hub roles that may assume it, by their name's suffix).
MEMBER_ROLES = {
    "MemberRole": (MEMBER, ("state-machine",)),
    "MemberReaderRole": (f"{MEMBER}-reader", ("plan-run", "plan-batch", "key-status", "reconcile")),
    "MemberKeyCheckRole": (f"{MEMBER}-key-check", ("key-check",)),
}
WRITER_ACTIONS = {
    "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:TagUser", "iam:UntagUser",
    "secretsmanager:PutSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutResourcePolicy",
}
# What each function may do, and nothing more: in a managed account, only what its member role there allows.
READS = {
    "PlanRunFunction": {"sts:AssumeRole", "states:ListExecutions"},
    "PlanBatchFunction": {"sts:AssumeRole"},
    "QueueActionsFunction": {"s3:GetObject"},
    "KeyStatusFunction": {"sts:AssumeRole"},
    "ReconcileFunction": {"sts:AssumeRole"},
    "ReportFunction": {"s3:GetObject", "events:PutEvents"},
    "KeyCheckFunction": {"sts:AssumeRole"},
}
ORGANIZATION = {"TargetAccounts": "ORGANIZATION"}
WRITES_RUN_RECORDS = {"PlanRunFunction", "QueueActionsFunction", "ReportFunction"}
GIVEN_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f0f0f0f-aaaa-bbbb-cccc-000000000000"
CONSUMER = f"arn:aws:iam::{ACCOUNT}:role/payments-service"
READERS = [f"arn:aws:iam::{ACCOUNT}:role/security-audit", f"arn:aws:iam::{ACCOUNT}:role/break-glass"]
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/platform-boundary"

DEFAULTS = {}
EVERYTHING = {
    "SenderEmail": "rotation@example.com",
    "ConsumerPrincipalArn": CONSUMER,
    "HistoryReaderArns": ",".join(READERS),
    "PermissionsBoundary": BOUNDARY,
}
GIVEN_KEY_SET = {**EVERYTHING, "KmsKeyArn": GIVEN_KEY}

# IAM offers no resource-level permission for these: "*" is the only possible Resource.
NO_RESOURCE_SCOPE = {
    "iam:ListUsers",
    "iam:GetAccountAuthorizationDetails",  # every user and its tags in bulk: metadata, never a secret
    "secretsmanager:ListSecrets",  # the plan filters by SecretNamePrefix; it lists metadata, never values
    # the credential report: every user's key status and creation time, password and MFA use; no key id, no secret
    "iam:GenerateCredentialReport", "iam:GetCredentialReport",
    "ses:SendEmail",  # scoped by its ses:FromAddress condition instead (checked below)
    # the accounts of the organization or of the listed OUs: the function checks the ids against TargetAccounts
    "organizations:ListAccounts", "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent",
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}


def as_list(value):
    return value if isinstance(value, list) else [value]


def deployed(parameters: dict) -> dict:
    """Logical id -> resolved properties of every resource the parameters create."""
    resources, resolver = stack.resolve(parameters)
    return {logical: {"Type": r["Type"], **resolver.resolve(r.get("Properties", {}))} for logical, r in resources.items()}


@pytest.fixture(scope="module", params=[DEFAULTS, EVERYTHING, GIVEN_KEY_SET], ids=["defaults", "all-options", "given-key"])
def template(request):
    return request.param, deployed(request.param)


def roles(resources: dict) -> dict:
    return {k: r for k, r in resources.items() if r["Type"] == "AWS::IAM::Role"}


def role_statements(role: dict) -> list[dict]:
    return [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def role_of(resources: dict, logical: str) -> dict:
    arn = resources[logical]["Role"] if "Role" in resources[logical] else resources[logical]["RoleArn"]
    (role,) = [r for k, r in roles(resources).items() if arn.endswith("/" + r.get("RoleName", f"{STACK}-{k}"))]
    return role


def granted(statements: list[dict], action: str) -> list[dict]:
    return [s for s in statements if s["Effect"] == "Allow" and any(fnmatchcase(action, a) for a in as_list(s["Action"]))]


def test_no_role_has_a_managed_full_access_policy_or_an_action_wildcard(template):
    _, resources = template
    for name, role in roles(resources).items():
        assert not [p for p in role.get("ManagedPolicyArns", []) if "FullAccess" in p], name
        for statement in role_statements(role):
            for action in as_list(statement["Action"]):
                assert "*" not in action.split(":", 1)[1], f"{name} grants {action}"


def test_star_resources_only_where_iam_offers_no_resource_scope(template):
    _, resources = template
    for name, role in roles(resources).items():
        for statement in role_statements(role):
            if "*" in as_list(statement["Resource"]):
                assert set(as_list(statement["Action"])) <= NO_RESOURCE_SCOPE, f"{name}: {statement}"


def test_only_the_member_role_writes_keys_of_users_under_the_path_and_rotation_secrets(template):
    _, resources = template
    member = role_statements(resources["MemberRole"])
    for action in ("iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:TagUser", "iam:UntagUser"):
        grants = granted(member, action)
        assert grants and all(as_list(s["Resource"]) == [USER_ARN] for s in grants), action
    for action in ("secretsmanager:PutSecretValue", "secretsmanager:CreateSecret"):
        grants = granted(member, action)
        assert grants and all(as_list(s["Resource"]) == [SECRETS_ARN] for s in grants), action
    # It reads nothing, and never a secret's value: the state machine's Tasks only write.
    assert {a for s in member for a in as_list(s["Action"]) if not a.startswith("kms:")} <= WRITER_ACTIONS
    # The hub's own roles hold no key or secret permission: they act in an account only as its member roles.
    for name, role in roles(resources).items():
        if name not in MEMBER_ROLES:
            for action in ("iam:CreateAccessKey", "iam:ListAccessKeys", "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue"):
                assert not granted(role_statements(role), action), (name, action)


def test_each_member_role_is_trusted_only_by_the_hub_roles_of_its_job_and_assumed_by_them_alone(template):
    _, resources = template
    for logical, (name, jobs) in MEMBER_ROLES.items():
        role = resources[logical]
        assert role["RoleName"] == name
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert (trust["Effect"], trust["Action"]) == ("Allow", "sts:AssumeRole")
        assert set(as_list(trust["Principal"]["AWS"])) == {f"arn:aws:iam::{ACCOUNT}:role/{MEMBER}-hub-{job}" for job in jobs}
    # And each hub role may assume only its job's member role, in whichever account.
    may_assume = {
        role.get("RoleName"): {g["Resource"] for g in granted(role_statements(role), "sts:AssumeRole")}
        for name, role in roles(resources).items()
        if name not in MEMBER_ROLES
    }
    # in this account only: the stack manages only this account (an ORGANIZATION hub's may be in any account)
    expected = {f"{MEMBER}-hub-{job}": {f"arn:aws:iam::{ACCOUNT}:role/{name}"} for name, jobs in MEMBER_ROLES.values() for job in jobs}
    assert {k: v for k, v in may_assume.items() if v} == expected


def test_a_hub_of_other_accounts_creates_no_member_role_here_and_lists_the_organization():
    resources = deployed(ORGANIZATION)
    assert not set(MEMBER_ROLES) & set(resources)
    for name, role in roles(resources).items():  # the member roles of whichever account, by name only
        for grant in granted(role_statements(role), "sts:AssumeRole"):
            assert grant["Resource"].startswith("arn:aws:iam::*:role/iam-key-rotation-member"), (name, grant)
    machine = resources["RotationStateMachine"]
    # Secrets are created under each member account's own key (member/template.yaml's alias).
    assert machine["DefinitionSubstitutions"]["SecretsKmsKeyArn"] == f"alias/{MEMBER}-secrets"
    statements = role_statements(role_of(resources, "PlanRunFunction"))
    assert {a for s in statements for a in as_list(s["Action"])} == READS["PlanRunFunction"] | {
        "organizations:DescribeOrganization", "organizations:ListAccounts", "organizations:ListAccountsForParent",
        "organizations:ListOrganizationalUnitsForParent", "s3:PutObject",
    }
    decrypters = {p for s in resources["RotationKey"]["KeyPolicy"]["Statement"] for p in as_list(s["Principal"].get("AWS", []))}
    assert not any(p.rsplit("/", 1)[-1] in {name for name, _ in MEMBER_ROLES.values()} for p in decrypters)


def test_report_email_only_from_the_sender(template):
    parameters, resources = template
    sends = granted(role_statements(role_of(resources, "RotationStateMachine")), "ses:SendEmail")
    if not parameters.get("SenderEmail"):
        assert sends == []
    else:
        assert sends and all(s["Condition"] == {"StringEquals": {"ses:FromAddress": parameters["SenderEmail"]}} for s in sends)


@pytest.mark.parametrize("function", list(READS))
def test_each_function_reads_only_what_it_needs_and_never_a_secret_value(template, function):
    parameters, resources = template
    statements = role_statements(role_of(resources, function))
    actions = {a for s in statements for a in as_list(s["Action"])}
    writes = {"s3:PutObject"} if function in WRITES_RUN_RECORDS else set()
    kms = {"kms:Decrypt", "kms:GenerateDataKey"} if function in WRITES_RUN_RECORDS and "KmsKeyArn" in parameters else set()
    assert actions == READS[function] | writes | kms, function
    for statement in statements:
        if set(as_list(statement["Action"])) & {"s3:GetObject", "s3:PutObject"}:
            assert statement["Resource"] == RUN_RECORDS, statement  # this stack's run records, nothing else
    if function == "PlanRunFunction":
        (listing,) = granted(statements, "states:ListExecutions")
        assert listing["Resource"] == MACHINE_ARN
    for statement in granted(statements, "sts:AssumeRole"):  # only its job's member role, in this account only
        job = "key-check" if function == "KeyCheckFunction" else "reader"
        assert statement["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/{MEMBER}-{job}", statement
    for statement in granted(statements, "events:PutEvents"):  # only the one bus
        assert statement["Resource"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default", statement


def test_the_reader_reads_metadata_only_and_only_the_key_check_reads_a_secrets_value(template):
    _, resources = template
    reader, key_check = role_statements(resources["MemberReaderRole"]), role_statements(resources["MemberKeyCheckRole"])
    assert {a for s in reader for a in as_list(s["Action"])} == {
        "iam:GetAccountAuthorizationDetails", "secretsmanager:ListSecrets", "iam:GetUser", "iam:ListAccessKeys",
        "iam:GetAccessKeyLastUsed", "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy",
        "iam:GenerateCredentialReport", "iam:GetCredentialReport",
    }
    for statement in granted(reader, "iam:GetAccessKeyLastUsed"):  # only keys of managed users
        assert as_list(statement["Resource"]) == [USER_ARN], statement
    for action in ("secretsmanager:GetResourcePolicy", "secretsmanager:DescribeSecret"):
        (statement,) = granted(reader, action)
        assert as_list(statement["Resource"]) == [SECRETS_ARN], statement
    assert {a for s in key_check for a in as_list(s["Action"]) if not a.startswith("kms:")} == {"secretsmanager:GetSecretValue"}
    (statement,) = granted(key_check, "secretsmanager:GetSecretValue")
    assert statement["Resource"] == SECRETS_ARN


def test_the_state_machine_reads_and_writes_only_its_own_run_records_and_child_executions(template):
    _, resources = template
    statements = role_statements(role_of(resources, "RotationStateMachine"))
    for action in ("s3:GetObject", "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"):
        assert [s["Resource"] for s in granted(statements, action)] == [RUN_RECORDS], action
    (start,) = granted(statements, "states:StartExecution")
    assert start["Resource"] == MACHINE_ARN
    for action, kind in (("states:DescribeExecution", "execution"), ("states:StopExecution", "execution"), ("states:DescribeMapRun", "mapRun")):
        (grant,) = granted(statements, action)
        assert grant["Resource"] == f"arn:aws:states:{REGION}:{ACCOUNT}:{kind}:{STACK}-rotation/*", action


def test_the_run_bucket_is_private_encrypted_tls_only_and_expires_its_records(template):
    parameters, resources = template
    bucket = resources["RunBucket"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    key_arn = parameters.get("KmsKeyArn") or stack.resolve(parameters)[1].physical["RotationKey"]["Arn"]
    assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True} and len(bucket["PublicAccessBlockConfiguration"]) == 4
    (expiry,) = bucket["LifecycleConfiguration"]["Rules"]
    assert (expiry["Status"], expiry["ExpirationInDays"]) == ("Enabled", "30")
    (tls,) = resources["RunBucketPolicy"]["PolicyDocument"]["Statement"]
    assert (tls["Effect"], tls["Action"], tls["Condition"]) == ("Deny", "s3:*", {"Bool": {"aws:SecureTransport": "false"}})


def test_a_given_run_bucket_replaces_the_stack_bucket():
    resources = deployed({"RunBucketName": "platform-run-records"})
    assert "RunBucket" not in resources and "RunBucketPolicy" not in resources
    grants = granted(role_statements(role_of(resources, "RotationStateMachine")), "s3:PutObject")
    assert [g["Resource"] for g in grants] == ["arn:aws:s3:::platform-run-records/runs/*"]


def test_the_key_check_reads_one_secret_per_session():
    """Of all the member role allows, the key check's session may only read the one secret it checks."""
    import key_check

    policy = key_check._read_secret_only("aws", "111111111111", "iam-key-rotation/app")
    actions = {a: s for s in policy["Statement"] for a in as_list(s["Action"])}
    assert set(actions) == {"secretsmanager:GetSecretValue", "kms:Decrypt"}
    assert actions["secretsmanager:GetSecretValue"]["Resource"] == "arn:aws:secretsmanager:*:111111111111:secret:iam-key-rotation/app-??????"
    assert actions["kms:Decrypt"]["Condition"] == {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}


def test_the_permissions_boundary_applies_to_every_role(template):
    parameters, resources = template
    for name, role in roles(resources).items():
        assert role.get("PermissionsBoundary") == parameters.get("PermissionsBoundary"), name


def test_every_role_is_assumable_only_by_its_service(template):
    _, resources = template
    for name, role in roles(resources).items():
        if name in MEMBER_ROLES:  # the hub's roles assume them (test above)
            continue
        (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
        services = as_list(statement["Principal"]["Service"])
        assert len(services) == 1 and services[0] in ("lambda.amazonaws.com", "states.amazonaws.com", "events.amazonaws.com"), name


def test_the_state_machine_encrypts_its_history_with_the_customer_managed_key(template):
    parameters, resources = template
    machine = resources["RotationStateMachine"]
    key_arn = parameters.get("KmsKeyArn") or stack.resolve(parameters)[1].physical["RotationKey"]["Arn"]
    assert machine["EncryptionConfiguration"]["Type"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert machine["EncryptionConfiguration"]["KmsKeyId"] == key_arn
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    # New secrets are created under the same key (the ASL gets it through DefinitionSubstitutions).
    assert machine["DefinitionSubstitutions"]["SecretsKmsKeyArn"] == key_arn
    asl = json.loads((ROOT / machine["DefinitionS3Location"]["Key"]).read_text())
    create = user_steps(asl)["Create secret with new key"]
    assert create["Parameters"]["KmsKeyId"] == "${SecretsKmsKeyArn}"


def test_the_key_policy_names_every_principal_that_may_decrypt():
    resources = deployed(EVERYTHING)
    policy = resources["RotationKey"]["KeyPolicy"]
    role_arn = lambda logical: f"arn:aws:iam::{ACCOUNT}:role/{STACK}-{logical}"  # noqa: E731
    hub_role = lambda suffix: f"arn:aws:iam::{ACCOUNT}:role/{MEMBER}-hub-{suffix}"  # noqa: E731
    member_roles = [f"arn:aws:iam::{ACCOUNT}:role/{MEMBER}", f"arn:aws:iam::{ACCOUNT}:role/{MEMBER}-key-check"]
    decrypters = {
        principal
        for s in policy["Statement"]
        if any(fnmatchcase("kms:Decrypt", a) for a in as_list(s["Action"]))
        for principal in as_list(s["Principal"].get("AWS", s["Principal"].get("Service")))
    }
    assert decrypters == {
        hub_role("state-machine"), *member_roles, CONSUMER, *READERS,
        # the run records in the run bucket, through S3 only
        hub_role("plan-run"), role_arn("QueueActionsFunctionRole"), role_arn("ReportFunctionRole"),
        "delivery.logs.amazonaws.com",  # CloudWatch log delivery of the state machine's ERROR logs (no execution data)
    }
    for statement in policy["Statement"]:
        if any(fnmatchcase("kms:Decrypt", a) for a in as_list(statement["Action"])):
            # every decrypt is bound to this state machine's history, the rotation secrets, S3 (run records), SNS (the
            # report topic), or this account's logs
            context = json.dumps(statement["Condition"])
            via = (f"s3.{REGION}.amazonaws.com", f"sns.{REGION}.amazonaws.com")
            assert MACHINE_ARN in context or SECRETS_ARN in context or any(v in context for v in via) or statement["Principal"].get("Service"), statement
    root = [s for s in policy["Statement"] if s["Principal"].get("AWS") == f"arn:aws:iam::{ACCOUNT}:root"]
    root_actions = [a for s in root for a in as_list(s["Action"])]
    # The account administers the key but cannot decrypt, nor grant itself decryption by a grant.
    assert root_actions and not any(fnmatchcase(a, p) or fnmatchcase(p, a) for p in root_actions for a in ("kms:Decrypt", "kms:CreateGrant"))


def test_reports_go_only_to_the_stacks_own_encrypted_topic(template):
    _, resources = template
    (publish,) = granted(role_statements(role_of(resources, "RotationStateMachine")), "sns:Publish")
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-reports"
    assert publish["Resource"] == topic
    assert resources["ReportTopic"]["TopicName"] == f"{STACK}-reports"
    # encrypted with the key of the secrets and the history (the stack's, or KmsKeyArn)
    assert resources["ReportTopic"]["KmsMasterKeyId"] == resources["RotationStateMachine"]["EncryptionConfiguration"]["KmsKeyId"]


def test_without_readers_or_consumer_only_the_workflow_decrypts():
    policy = deployed(DEFAULTS)["RotationKey"]["KeyPolicy"]
    decrypters = {p for s in policy["Statement"] if "kms:Decrypt" in as_list(s["Action"]) for p in as_list(s["Principal"].get("AWS", []))}
    workflow = (f"{MEMBER}-hub-state-machine", MEMBER, f"{MEMBER}-key-check", f"{MEMBER}-hub-plan-run", f"{STACK}-QueueActionsFunctionRole", f"{STACK}-ReportFunctionRole")
    assert decrypters == {f"arn:aws:iam::{ACCOUNT}:role/{role}" for role in workflow}


def test_a_given_key_replaces_the_stack_key():
    resources = deployed(GIVEN_KEY_SET)
    assert "RotationKey" not in resources
    statements = role_statements(role_of(resources, "RotationStateMachine"))
    assert {s["Resource"] for s in granted(statements, "kms:GenerateDataKey")} == {GIVEN_KEY}
    assert resources["RunBucket"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == GIVEN_KEY


def test_the_consumer_gets_read_only_access_and_public_policies_are_blocked():
    states = user_steps(json.loads((ROOT / "statemachine" / "rotation.asl.json").read_text()))
    (statement,) = states["Consumer policy"]["Result"]["Statement"]
    assert statement["Principal"] == {"AWS": "${ConsumerPrincipalArn}"}
    assert sorted(statement["Action"]) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    assert states["Grant the consumer read access"]["Parameters"]["BlockPublicPolicy"] is True
    assert granted(role_statements(deployed(DEFAULTS)["MemberRole"]), "secretsmanager:PutResourcePolicy") == [], (
        "without a consumer the member role cannot write resource policies"
    )
    (grant,) = granted(role_statements(deployed(EVERYTHING)["MemberRole"]), "secretsmanager:PutResourcePolicy")
    assert grant["Resource"] == SECRETS_ARN


def test_the_schedule_role_only_starts_this_state_machine():
    resources = deployed(DEFAULTS)
    statements = role_statements(role_of_schedule(resources))
    (start,) = granted(statements, "states:StartExecution")
    assert start["Resource"] == MACHINE_ARN


def user_steps(asl: dict) -> dict:
    """The steps for one user: inside each batch's child execution."""
    return asl["States"]["Act on each batch of users"]["ItemProcessor"]["States"]["Act on each user"]["ItemProcessor"]["States"]


def role_of_schedule(resources):
    (schedule,) = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    (target,) = schedule["Targets"]
    (role,) = [r for k, r in roles(resources).items() if target["RoleArn"].endswith("/" + f"{STACK}-{k}")]
    return role


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def checkov_report(template: Path) -> dict:
    """checkov's report on a CloudFormation template, once it has found no failed check and every skip is justified
    in the resource's Metadata (member/template.yaml's test uses it too)."""
    assert CHECKOV.exists(), "checkov is not installed: `make test` installs it in .venv-checkov (requirements-checkov.txt)"
    # A clean report on the same template's content, checkov's version and command is reused (tests/tool_cache.py).
    result = tool_cache.run(
        [str(CHECKOV), "-f", str(template), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        inputs=[template], cwd=ROOT, timeout=300, env_prefixes=("CKV_", "CHECKOV", "BC_", "PRISMA", "LOG_LEVEL"),
    )
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == [], "checkov failed checks (fix them, or skip with a justification in the resource's Metadata):\n" + "\n".join(failed)
    for skipped in report["results"]["skipped_checks"]:
        assert len(skipped.get("check_result", {}).get("suppress_comment", "")) > 20, f"unjustified skip: {skipped['check_id']}"
    return report


@pytest.mark.slow
def test_checkov_finds_nothing_but_skips_justified_in_the_template(tmp_path):
    translated = tmp_path / "translated-template.json"
    translated.write_text(json.dumps(stack.translate()))
    assert checkov_report(translated)["summary"]["passed"] > 20
