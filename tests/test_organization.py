"""One hub stack over an AWS Organization, on the emulator: the hub (template.yaml, TargetAccounts) in the
management account, member/template.yaml deployed into member accounts through the real template, every IAM and
Secrets Manager Task acting in the user's account through its Credentials, and the planning functions assuming the
member role. Every run is checked, account by account, for the invariants and for secret material."""

import json
from unittest import mock

import pytest

from emulator import account, cross_account, stack
from test_rotation_workflow import emulate, summary  # noqa: F401  emulate, a fixture: every run checked for the invariants and leaks

START = "2026-01-05T06:00:00Z"
HUB = stack.ACCOUNT_ID
MEMBER_ROLE = "iam-key-rotation-member"
PREFIX = "iam-key-rotation/"


def user(name, age_days, status="Active", owner=None):
    return {
        "name": name,
        "tags": {"KeyRotation": "enabled", "KeyOwnerEmail": owner or f"{name}-owner@example.com"},
        "keys": [{"ageDays": age_days, "status": status, "inSecret": True}],
    }


def organization(*members, target="ORGANIZATION"):
    """A hub (one due user of its own, the member stack deployed in its account too: ORGANIZATION includes it) and
    the member accounts given as (name, users, has the member stack)."""
    return {
        "start": START,
        "parameters": {"TargetAccounts": target, "SenderEmail": "rotation@example.com", "NotificationEmails": "team@example.com"},
        "verifiedEmails": ["rotation@example.com"],
        "users": [user("hub-deployer", 85)],
        "organization": {
            "hubMemberStack": True,
            "accounts": [{"name": name, "users": users, "memberStack": stacked} for name, users, stacked in members],
        },
    }


THREE_MEMBERS = organization(
    ("payments", [user("ci-deployer", 85), user("fresh", 3)], True),
    ("analytics", [user("ci-deployer", 95)], True),
    ("sandbox", [user("tester", 95)], False),  # no member stack: the hub cannot act there
)


def keys(user_name, account_id):
    return {k.id: k.status for k in account.keys_of(user_name, account_id)}


def outcomes(run):
    return {(u["account"], u["user"]): u["outcome"] for u in summary(run)["users"]}


def test_one_run_rotates_in_every_account_with_the_member_role_and_reports_the_one_without(emulate):
    aws = emulate(THREE_MEMBERS)
    payments, analytics, sandbox = (aws.member_accounts[n] for n in ("payments", "analytics", "sandbox"))
    before = {(a, u): keys(u, a) for a, u in ((HUB, "hub-deployer"), (payments, "ci-deployer"), (analytics, "ci-deployer"), (sandbox, "tester"))}

    run = aws.scheduled_run()

    # The account without the member stack fails the run (the alarm fires); the others are acted on all the same.
    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert f"1 account(s) not reached: {sandbox}" in run.cause and "Deploy member/template.yaml there" in run.cause
    assert (summary(run)["accounts"], summary(run)["unreachableAccounts"], summary(run)["rotated"]) == (4, 1, 3)
    assert outcomes(run) == {
        (HUB, "hub-deployer"): "rotated", (payments, "ci-deployer"): "rotated", (analytics, "ci-deployer"): "rotated",
    }
    # Two users of one name in two accounts are two users: each got its own new key, in its own account's secret.
    for account_id, name in ((HUB, "hub-deployer"), (payments, "ci-deployer"), (analytics, "ci-deployer")):
        (new,) = set(keys(name, account_id)) - set(before[account_id, name])
        assert account.workflow_secrets(PREFIX, account_id)[PREFIX + name].current_key == new
    assert keys("tester", sandbox) == before[sandbox, "tester"]
    # One email, grouped by account, the unreachable account first, with the fix.
    (team,) = [e for e in run.emails if e.destinations == ["team@example.com"]]
    assert "1 account(s) not reached" in team.subject
    body = team.body
    assert body.index(f"account {sandbox}: FAILED") < body.index(f"Account {analytics}:") < body.index(f"Account {payments}:")
    assert f"{payments}/ci-deployer: ROTATED" in body and f"{analytics}/ci-deployer: ROTATED" in body


def test_the_management_account_without_its_member_stack_is_listed_and_does_not_fail_the_run(emulate):
    fixture = organization(("payments", [user("ci-deployer", 85)], True))
    aws = emulate({**fixture, "organization": {**fixture["organization"], "hubMemberStack": False}})

    run = aws.scheduled_run()

    assert run.status == "SUCCEEDED", run.cause
    assert outcomes(run) == {(aws.member_accounts["payments"], "ci-deployer"): "rotated"}  # not the hub's own user
    (team,) = [e for e in run.emails if e.destinations == ["team@example.com"]]
    assert f"account {HUB}: SKIPPED" in team.body and "management account has no member roles" in team.body


def test_the_management_account_with_its_member_stack_fails_the_run_when_it_cannot_be_read(emulate):
    # Found by make soak: the hub's own account (the management account) was only listed, so its users went
    # unmanaged while the run's cause named the other accounts alone.
    from emulator.faults import failing

    aws = emulate(organization(("payments", [user("ci-deployer", 85)], True)))
    payments = aws.member_accounts["payments"]

    with failing("secretsmanager", "list_secrets", "InternalServiceError", runs_only=True):
        run = aws.scheduled_run()

    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert run.cause.startswith("2 account(s) not reached: ")
    assert f"{HUB} (its users and secrets could not be read" in run.cause and f"{payments} (" in run.cause




def test_a_first_rotation_creates_the_secret_in_the_member_account_under_its_own_key(emulate):
    first = {"name": "new-service", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 85}]}  # no secret yet
    aws = emulate(organization(("payments", [first], True)))
    payments = aws.member_accounts["payments"]
    from moto.secretsmanager.models import secretsmanager_backends

    run = aws.scheduled_run()

    assert outcomes(run)[payments, "new-service"] == "rotated"
    secret = secretsmanager_backends[payments][stack.REGION].secrets[PREFIX + "new-service"]
    assert secret.kms_key_id == f"alias/{MEMBER_ROLE}-secrets"  # the member stack's key, by its alias
    assert PREFIX + "new-service" not in account.workflow_secrets(PREFIX, HUB)  # nothing of it in the hub


def test_the_old_keys_are_retired_then_deleted_in_every_account(emulate):
    aws = emulate(THREE_MEMBERS)
    payments, analytics = aws.member_accounts["payments"], aws.member_accounts["analytics"]
    aws.scheduled_run()
    old = {(a, n): min(keys(n, a)) for a, n in ((payments, "ci-deployer"), (analytics, "ci-deployer"))}
    old = {(a, n): next(k for k in keys(n, a) if account.workflow_secrets(PREFIX, a)[PREFIX + n].current_key != k) for a, n in old}

    aws.advance(7)
    retiring = aws.scheduled_run()
    aws.advance(7)
    deleting = aws.scheduled_run()

    assert {k: v for k, v in outcomes(retiring).items() if k[0] != HUB} == {(payments, "ci-deployer"): "retired", (analytics, "ci-deployer"): "retired"}
    assert {k: v for k, v in outcomes(deleting).items() if k[0] != HUB} == {(payments, "ci-deployer"): "retired", (analytics, "ci-deployer"): "retired"}
    for (account_id, name), key_id in old.items():
        assert key_id not in keys(name, account_id)  # deactivated a week ago, deleted now
        assert list(keys(name, account_id).values()) == ["Active"]


def test_a_suspended_account_found_in_the_organization_is_listed_and_does_not_fail_the_run(emulate):
    fixture = organization(("payments", [user("ci-deployer", 10)], True), ("closed", [user("old", 95)], True))
    fixture["organization"]["accounts"][1]["status"] = "SUSPENDED"
    aws = emulate(fixture)
    closed = aws.member_accounts["closed"]

    run = aws.scheduled_run()

    assert run.status == "SUCCEEDED"
    assert (run.output["accounts"], run.output["unreachableAccounts"]) == (3, 1)
    (team,) = [e for e in run.emails if e.destinations == ["team@example.com"]]
    assert f"account {closed}: SKIPPED" in team.body and "SUSPENDED in AWS Organizations" in team.body
    assert list(keys("old", closed).values()) == ["Active"]  # nothing done there


def test_an_on_demand_run_narrows_the_accounts_and_names_users_in_them(emulate):
    aws = emulate(THREE_MEMBERS)
    payments, analytics = aws.member_accounts["payments"], aws.member_accounts["analytics"]
    before = keys("ci-deployer", analytics)

    run = aws.start({"accounts": [payments], "users": ["ci-deployer"], "force": True})

    assert run.status == "SUCCEEDED"
    assert outcomes(run) == {(payments, "ci-deployer"): "rotated"}
    assert keys("ci-deployer", analytics) == before
    outside = aws.start({"accounts": ["999999999999"]})
    assert (outside.status, outside.error) == ("FAILED", "InvalidInput")
    assert "outside this stack's TargetAccounts" in outside.cause
    nowhere = aws.start({"accounts": [payments], "users": ["tester"]})  # tester is a user of another account
    assert "no managed IAM user is named tester in any of the run's accounts" in nowhere.cause


def trusting(account_id: str, role_name: str, *hub_roles: str) -> None:
    """Rewrite a member role's trust policy to name only ``hub_roles`` (by their suffix after -hub-)."""
    principals = [f"arn:aws:iam::{HUB}:role/{MEMBER_ROLE}-hub-{r}" for r in hub_roles]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"}]}
    cross_account.client_in(account_id, "iam").update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trust))


def test_a_member_role_that_does_not_trust_the_state_machine_fails_its_users_and_changes_nothing(emulate):
    aws = emulate(organization(("payments", [user("ci-deployer", 85)], True)))
    payments = aws.member_accounts["payments"]
    trusting(payments, MEMBER_ROLE, "plan-run")  # a hub role, but not the state machine's
    before = keys("ci-deployer", payments)

    run = aws.scheduled_run()

    # Planning (the reader role still trusts the functions) sees the user; its steps (the state machine) are refused.
    assert run.status == "FAILED"
    (failed,) = [u for u in summary(run)["users"] if u["account"] == payments]
    assert failed["outcome"] == "failed" and "not authorized to perform: sts:AssumeRole" in failed["detail"]
    assert keys("ci-deployer", payments) == before  # no key was created: the first call was refused


def test_each_function_is_checked_against_the_trust_of_its_own_member_role(emulate):
    # Every function assumes the reader role with its own role: one the reader no longer trusts is refused, even
    # when another function of the same run was let in a moment before (as on AWS, each has its own process).
    aws = emulate(organization(("payments", [user("ci-deployer", 85)], True)))
    payments = aws.member_accounts["payments"]
    trusting(payments, f"{MEMBER_ROLE}-reader", "plan-run", "key-status", "reconcile")  # not plan-batch
    before = keys("ci-deployer", payments)

    run = aws.scheduled_run()

    (unreadable,) = [u for u in summary(run)["users"] if u["account"] == payments]
    assert unreadable["outcome"] == "failed"
    assert f"{MEMBER_ROLE}-hub-plan-batch" in unreadable["detail"] and f"role {MEMBER_ROLE}-reader" in unreadable["detail"]
    assert keys("ci-deployer", payments) == before


def test_the_key_check_reads_the_one_secret_it_checks_and_no_other(emulate):
    from moto.sts.responses import TokenResponse

    aws = emulate(organization(("payments", [user("ci-deployer", 85), user("other", 85)], True)))
    payments = aws.member_accounts["payments"]
    aws.scheduled_run()
    aws.advance(7)
    asked = []
    assume_role = TokenResponse.assume_role

    def recording(response):
        if response._get_param("RoleArn").endswith(f":role/{MEMBER_ROLE}-key-check"):
            asked.append((response._get_param("RoleArn"), json.loads(response._get_param("Policy"))))
        return assume_role(response)

    with mock.patch.object(TokenResponse, "assume_role", recording):
        run = aws.scheduled_run()

    assert outcomes(run)[payments, "ci-deployer"] == "retired"
    secrets = sorted(
        next(s["Resource"] for s in policy["Statement"] if s["Action"] == "secretsmanager:GetSecretValue")
        for role, policy in asked if f"::{payments}:" in role
    )
    assert secrets == [f"arn:aws:secretsmanager:*:{payments}:secret:{PREFIX}{name}-??????" for name in ("ci-deployer", "other")]










def test_a_hub_that_cannot_list_the_organization_says_how_to_let_it(emulate):
    aws = emulate({"start": START, "parameters": {"TargetAccounts": "ORGANIZATION"}, "users": [user("app", 85)]})  # no organization

    run = aws.scheduled_run()

    assert run.status == "FAILED" and keys("app", HUB) and len(keys("app", HUB)) == 1  # nothing done
    assert "TargetAccounts=ORGANIZATION needs the accounts of the organization" in run.cause
    assert "put-resource-policy" in run.cause and "Nothing was changed" in run.cause


def test_the_accounts_below_an_ou_are_found_at_any_depth_and_no_others():
    import boto3
    from moto import mock_aws

    import reading
    import targets

    with mock_aws():
        organizations = boto3.client("organizations", region_name=stack.REGION)
        organizations.create_organization(FeatureSet="ALL")
        root = organizations.list_roots()["Roots"][0]["Id"]
        team = organizations.create_organizational_unit(ParentId=root, Name="team")["OrganizationalUnit"]["Id"]
        nested = organizations.create_organizational_unit(ParentId=team, Name="nested")["OrganizationalUnit"]["Id"]
        ids = {}
        for name, parent in (("in-team", team), ("in-nested", nested), ("elsewhere", root)):
            ids[name] = organizations.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
            if parent != root:
                organizations.move_account(AccountId=ids[name], SourceParentId=root, DestinationParentId=parent)

        below = reading.organization_accounts(organizations, targets.parse_targets(team))
        everything = reading.organization_accounts(organizations, targets.parse_targets("ORGANIZATION"))

    assert {a.id for a in below} == {ids["in-team"], ids["in-nested"]}
    assert {ids["in-team"], ids["in-nested"], ids["elsewhere"]} < {a.id for a in everything}


# --- faults, account by account ---------------------------------------------------------------------------------


def test_a_failed_store_in_a_member_account_deletes_the_new_key_there_and_the_other_accounts_go_on(emulate):
    from emulator.faults import about_user, failing

    aws = emulate(organization(("payments", [user("ci-deployer", 85)], True), ("analytics", [user("etl", 85)], True)))
    payments, analytics = aws.member_accounts["payments"], aws.member_accounts["analytics"]
    before = keys("ci-deployer", payments)

    with failing("secretsmanager", "put_secret_value", "InternalServiceError", when=about_user("ci-deployer")):
        run = aws.scheduled_run()

    assert (run.status, run.error) == ("FAILED", "RotationFailed")
    assert outcomes(run) == {(payments, "ci-deployer"): "failed", (analytics, "etl"): "rotated", (HUB, "hub-deployer"): "rotated"}
    assert keys("ci-deployer", payments) == before  # the new key, never stored, was deleted again in its account


def test_a_create_that_succeeded_despite_its_error_leaves_no_stray_key_in_the_member_account(emulate):
    # The first CreateAccessKey creates a key whose answer is lost; the retry meets IAM's two-key limit; the
    # reconcile function, acting as the member role, finds the key there and the cleanup Task deletes it.
    from emulator.faults import about_user, failing

    aws = emulate(organization(("payments", [user("ci-deployer", 85)], True)))
    payments = aws.member_accounts["payments"]
    before = keys("ci-deployer", payments)

    with failing("iam", "create_access_key", "ServiceFailure", times=1, after=True, when=about_user("ci-deployer")):
        run = aws.scheduled_run()

    assert outcomes(run)[payments, "ci-deployer"] == "failed"
    assert keys("ci-deployer", payments) == before


def test_same_named_users_of_two_accounts_keep_their_own_owners_and_events(emulate):
    aws = emulate(organization(
        ("payments", [user("ci-deployer", 85, owner="payments-team@example.com")], True),
        ("analytics", [user("ci-deployer", 85, owner="data-team@example.com")], True),
    ))
    payments, analytics = aws.member_accounts["payments"], aws.member_accounts["analytics"]

    run = aws.scheduled_run()

    owners = {e.destinations[0]: e.body for e in run.emails if e.destinations != ["team@example.com"]}
    assert f"{payments}/ci-deployer: ROTATED" in owners["payments-team@example.com"]
    assert analytics not in owners["payments-team@example.com"]
    assert f"{analytics}/ci-deployer: ROTATED" in owners["data-team@example.com"]
    assert payments not in owners["data-team@example.com"]
    rotated = [json.loads(e) for e in run.events_put if '"newKeyId"' in e]
    assert sorted((e["account"], e["user"]) for e in rotated) == sorted(
        [(HUB, "hub-deployer"), (payments, "ci-deployer"), (analytics, "ci-deployer")]
    )


def test_the_users_of_a_batch_that_could_not_be_planned_keep_their_account(emulate):
    from emulator.faults import failing, lambda_function

    aws = emulate(organization(("payments", [user("ci-deployer", 85)], True)))
    payments = aws.member_accounts["payments"]

    with failing("lambda", "invoke", "ServiceException", when=lambda_function("PlanBatch")):
        run = aws.scheduled_run()

    assert outcomes(run) == {(HUB, "hub-deployer"): "failed", (payments, "ci-deployer"): "failed"}
    assert f"{payments}/ci-deployer: FAILED" in next(e.body for e in run.emails if e.destinations == ["team@example.com"])


def test_any_execution_name_makes_a_valid_session_name(emulate):
    # Step Functions allows a one-character execution name; STS wants 2 to 64 characters for a session's name.
    aws = emulate(organization(("payments", [user("ci-deployer", 85)], True)))
    event = {"input": {}, "startTime": START, "execution": "arn:aws:states:us-east-1:123456789012:execution:m:x",
             "executionName": "x", "stateMachine": aws.deployment.state_machine_arn}

    planned, error = aws.invoke("PlanRunFunction", event)

    assert error is None, planned
    assert (planned["accounts"], planned["unreachableAccounts"], planned["managedUsers"]) == (2, 0, 2)  # the hub and payments
