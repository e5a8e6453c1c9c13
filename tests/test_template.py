"""The state machine definition and the translated template: wired together, least-privilege, and robust.

cfn-lint cannot see the ASL (it lives in a DefinitionUri file), so the ASL gets its own structural checks here.
IAM checks run on the template as CloudFormation receives it after the SAM transform. Every user of the ``asl``
and ``cfn`` module fixtures is here, so each is built once. The linters, the substitutions, the parameter
contract and the alarm and log retention are in tests/test_template_deployment.py, which imports its constants
from here.
"""

import json
import re
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path

import botocore.session
import pytest

import decisions

from emulator import stack
from emulator.stack import TemplateError, parameter_values, translate

ROOT = Path(__file__).resolve().parent.parent
ASL_PATH = ROOT / "statemachine" / "rotation.asl.json"
ASL_TEXT = ASL_PATH.read_text()

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
USER_ARN = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user${UserPath}*"}
IAM_WRITES = ["iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:TagUser", "iam:UntagUser"]
ERROR_NAME = re.compile(r"^(States\.[A-Za-z]+|[A-Z][A-Za-z]+\.[A-Za-z]+Exception|[A-Z][A-Za-z]+)$")
SERVICE_PREFIX = {"iam": "Iam", "secretsmanager": "SecretsManager", "ses": "Ses", "sns": "Sns", "lambda": "Lambda", "sfn": "Sfn"}
# The aws-sdk integration's service name, as botocore and IAM's policies name it.
BOTOCORE_SERVICE = {"sfn": "stepfunctions"}
IAM_SERVICE = {"sfn": "states"}
# Tasks that end their child execution when they fail, by design: the Distributed Map counts the failed children
# (ToleratedFailurePercentage 100), and a later state reports them.
FAILS_ITS_CHILD = {"$/Plan each batch of users/Plan the batch's users", "$/Email each owner/Email the owner"}


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asl() -> dict:
    return json.loads(ASL_TEXT)


@pytest.fixture(scope="module")
def cfn() -> dict:
    return translate()


def machines(machine: dict, path: str = "$"):
    """The machine and every nested one (Map ItemProcessor/Iterator, Parallel Branches), with a readable path."""
    yield path, machine
    for name, state in machine["States"].items():
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from machines(state[key], f"{path}/{name}")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from machines(branch, f"{path}/{name}[{i}]")


def all_states(machine: dict):
    for path, m in machines(machine):
        for name, state in m["States"].items():
            yield f"{path}/{name}", state


def tasks(machine: dict):
    return [(name, state) for name, state in all_states(machine) if state["Type"] == "Task"]


def transitions(state: dict) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [rule.get("Next") for rule in state.get("Choices", [])]
    targets += [catcher.get("Next") for catcher in state.get("Catch", [])]
    return [t for t in targets if t is not None]


def is_terminal(state: dict) -> bool:
    return state["Type"] in ("Succeed", "Fail") or state.get("End") is True


def reachable(states: dict, start: str, edges) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges(name))
    return seen


def aws_sdk_service(state: dict) -> str:
    """'iam' for arn:${Partition}:states:::aws-sdk:iam:createAccessKey, 'lambda' for lambda:invoke."""
    match = re.search(r":states:::(?:aws-sdk:)?([a-z0-9]+):", state["Resource"])
    assert match, f"unrecognised Task resource {state['Resource']}"
    return match.group(1)


def error_names(state: dict) -> list[str]:
    return [e for rule in state.get("Retry", []) + state.get("Catch", []) for e in rule["ErrorEquals"]]


def strings(node):
    """Every string in a JSON document, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def role_of(cfn: dict, logical_id: str, role_property: str) -> dict:
    role_name = cfn["Resources"][logical_id]["Properties"][role_property]["Fn::GetAtt"][0]
    return cfn["Resources"][role_name]["Properties"]


def statements(role: dict):
    """Every inline policy statement; both branches of an Fn::If (only AWS::NoValue is dropped)."""

    def flatten(node):
        if isinstance(node, dict) and "Fn::If" in node:
            for branch in node["Fn::If"][1:]:
                yield from flatten(branch)
        elif node != {"Ref": "AWS::NoValue"}:
            yield node

    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            yield from flatten(statement)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def actions_of(statement: dict) -> list[str]:
    """The statement's actions, from both branches where an Fn::If chooses them."""
    action = statement.get("Action", [])
    if isinstance(action, dict) and "Fn::If" in action:
        return [a for branch in action["Fn::If"][1:] for a in as_list(branch)]
    return as_list(action)


def grants(statement: dict, action: str) -> bool:
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in actions_of(statement))


# --- 1. ASL text ---------------------------------------------------------------------------------------------


def test_placeholders_sit_inside_json_strings(asl):
    in_text = Counter(PLACEHOLDER.findall(ASL_TEXT))
    in_strings = Counter(name for s in strings(asl) for name in PLACEHOLDER.findall(s))
    assert in_text and in_text == in_strings


# --- 2. graph shape ------------------------------------------------------------------------------------------


def test_every_state_is_reachable_and_every_transition_names_a_state(asl):
    for path, machine in machines(asl):
        states = machine["States"]
        for name, state in states.items():
            assert set(transitions(state)) <= set(states), f"{path}/{name} goes to an unknown state"
        seen = reachable(states, machine["StartAt"], lambda name: transitions(states[name]))
        assert set(states) - seen == set(), f"unreachable from {path} StartAt"


def test_every_path_can_end(asl):
    for path, machine in machines(asl):
        states = machine["States"]
        for name, state in states.items():
            if state["Type"] == "Choice":
                assert state["Choices"] and all("Next" in rule for rule in state["Choices"]), f"{path}/{name}"
            else:
                assert is_terminal(state) or "Next" in state, f"{path}/{name} neither ends nor goes on"
        # Walking transitions backwards from the terminal states must reach every state: no dead-end cycles.
        predecessors = {n: [p for p, s in states.items() if n in transitions(s)] for n in states}
        can_end = set()
        for terminal in (n for n, s in states.items() if is_terminal(s)):
            can_end |= reachable(states, terminal, lambda n: predecessors[n])
        assert set(states) - can_end == set(), f"states in {path} that can never reach an end"


# --- 3. Task robustness --------------------------------------------------------------------------------------


def test_every_task_retries_transient_errors_with_jittered_backoff_and_catches_the_rest(asl):
    assert len(tasks(asl)) >= 10
    for name, task in tasks(asl):
        assert task.get("Comment", "").strip(), f"{name} has no Comment"
        assert task.get("Retry"), f"{name} has no Retry"
        assert task.get("Catch") or name in FAILS_ITS_CHILD, f"{name} has no Catch"
        for rule in task["Retry"]:
            assert {"BackoffRate", "MaxAttempts"} <= set(rule), f"{name}: {rule}"
            assert rule.get("JitterStrategy") == "FULL", f"{name}: {rule}"
            assert "States.ALL" not in rule["ErrorEquals"], f"{name} retries every error, not named transient ones"


def aws_error_names(service: str) -> set[str]:
    """What Step Functions can report for an aws-sdk task: ``Service.ShapeException`` for each error shape in
    the service's model (the suffix added where the shape lacks it) and ``Service.ServiceException`` for any
    error outside the model (IAM's Throttling and AccessDenied among them)."""
    prefix = SERVICE_PREFIX[service]
    shapes = botocore.session.get_session().get_service_model(BOTOCORE_SERVICE.get(service, service)).error_shapes
    names = {f"{prefix}.{shape.name}" for shape in shapes} | {f"{prefix}.{prefix}"}
    return {n if n.endswith("Exception") else n + "Exception" for n in names}


def lambda_own_errors() -> set[str]:
    """The exception classes the stack's functions define: a raised one reaches Step Functions by its name."""
    import key_check
    import plan_run

    return {
        name
        for module in (plan_run, key_check)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Exception) and value.__module__ in ("plan_run", "key_check", "decisions")
    }


# AWS's documented transient errors of the optimised lambda:invoke integration, and the functions' own errors.
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                 "Lambda.TooManyRequestsException"} | lambda_own_errors()


def test_error_names_are_ones_aws_can_report(asl):
    for name, task in tasks(asl):
        service = aws_sdk_service(task)
        known = LAMBDA_ERRORS if service == "lambda" else aws_error_names(service)
        for error in error_names(task):
            assert ERROR_NAME.match(error), f"{name}: {error!r}"
            if not error.startswith("States."):
                assert error in known, f"{name} handles {error!r}, which a {service} task never reports"


# --- 4. ASL <-> Lambda contract ------------------------------------------------------------------------------


def test_secret_version_id_uses_the_prefix_the_lambda_parses(asl):
    tokens = [
        value
        for _, task in tasks(asl)
        for key, value in task.get("Parameters", {}).items()
        if key.startswith("ClientRequestToken")
    ]
    assert len(tokens) == 2  # PutSecretValue and CreateSecret
    for token in tokens:
        assert f"States.Format('{decisions.SECRET_VERSION_PREFIX}{{}}'" in token, token


# --- 5. translated template ----------------------------------------------------------------------------------


def test_schedule_starts_the_state_machine_with_the_scheduled_time(cfn):
    (schedule,) = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    (machine_id,) = [k for k, r in cfn["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    (target,) = schedule["Targets"]
    assert target["Arn"] == {"Ref": machine_id}
    # A scheduled event's "time" is the scheduled time: it becomes the execution input's "time".
    event = stack.scheduled_event("2026-03-01T06:00:00Z")
    assert json.loads(stack.transform_input(target["InputTransformer"], event)) == {"time": "2026-03-01T06:00:00Z"}
    assert schedule["State"] == {"Ref": "ScheduleState"}
    assert schedule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}


HANDLERS = {
    "PlanRunFunction": "plan_run.handler",
    "PlanBatchFunction": "plan_batch.handler",
    "QueueActionsFunction": "queue_actions.handler",
    "KeyStatusFunction": "key_status.handler",
    "ReconcileFunction": "reconcile.handler",
    "ReportFunction": "report_run.handler",
    "KeyCheckFunction": "key_check.handler",
}


def test_each_task_has_its_own_function_and_handler(cfn, asl):
    functions = {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert {k: f["Handler"] for k, f in functions.items()} == HANDLERS
    for function in functions.values():
        assert (function["Runtime"], function["Architectures"]) == ("python3.13", ["arm64"])
    invoked = [task["Parameters"]["FunctionName"] for _, task in tasks(asl) if task["Resource"].endswith(":lambda:invoke")]
    assert sorted(set(invoked)) == sorted("${%sArn}" % name for name in HANDLERS)
    assert len(invoked) == len(HANDLERS)  # one Task each


def test_lambda_runtime_and_state_machine_logging(cfn):
    logging = cfn["Resources"]["RotationStateMachine"]["Properties"]["LoggingConfiguration"]
    assert logging["IncludeExecutionData"] is False


def test_no_role_has_a_full_access_managed_policy(cfn):
    roles = {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert len(roles) >= 3
    for name, role in roles.items():
        assert "FullAccess" not in json.dumps(role.get("ManagedPolicyArns", [])), name


def test_the_functions_only_read_aws_and_write_only_run_records_and_events(cfn):
    for function in HANDLERS:
        role = list(statements(role_of(cfn, function, "Role")))
        actions = [a for s in role for a in actions_of(s)]
        assert actions, function
        writes = [a for a in actions if not re.fullmatch(r"[a-z0-9-]+:(List|Get|Describe)[A-Za-z]+", a)]
        # The report also puts the run's lifecycle events on the bus (test_least_privilege.py: that bus only).
        allowed = {"s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt", "sts:AssumeRole"} | ({"events:PutEvents"} if function == "ReportFunction" else set())
        assert set(writes) <= allowed, (function, writes)
        for statement in role:
            if "s3:PutObject" in actions_of(statement):
                assert json.dumps(statement["Resource"]).count("/runs/*") == 1, (function, statement)


def test_the_member_role_writes_only_managed_users_and_rotation_secrets(cfn):
    role_statements = list(statements(cfn["Resources"]["MemberRole"]["Properties"]))
    for action in IAM_WRITES:
        granting = [s for s in role_statements if grants(s, action)]
        assert granting, f"{action} is never granted"
        assert all(as_list(s.get("Resource")) == [USER_ARN] for s in granting), f"{action}: {granting}"
    secret_statements = [
        s for s in role_statements if any(a.startswith("secretsmanager:") and a != "secretsmanager:ListSecrets" for a in actions_of(s))
    ]
    assert secret_statements
    for statement in secret_statements:
        for resource in as_list(statement.get("Resource")):
            assert "secret:${SecretNamePrefix}*" in json.dumps(resource), statement


def test_tagging_is_limited_to_the_workflows_own_tags(cfn):
    role_statements = statements(cfn["Resources"]["MemberRole"]["Properties"])
    tagging = [s for s in role_statements if grants(s, "iam:TagUser") or grants(s, "iam:UntagUser")]
    assert tagging
    for statement in tagging:
        assert statement.get("Condition") == {
            "ForAllValues:StringLike": {"aws:TagKeys": [decisions.INACTIVE_SINCE_TAG_PREFIX + "*", decisions.SECRET_TAG]}
        }, statement


def test_the_asl_tags_each_stored_key_with_the_secret_tag_the_planner_reads(asl):
    (record,) = [task for name, task in tasks(asl) if name.endswith("/Record the secret on the user")]
    assert record["Parameters"]["Tags"] == [{"Key": decisions.SECRET_TAG, "Value.$": "$.secretName"}]


def test_every_sdk_call_in_the_asl_is_allowed_by_the_role_it_runs_as(cfn, asl):
    """IAM and Secrets Manager calls act in the user's account as its member role (Credentials from the user's
    item); the others (the report's topic and emails, map runs) as the state machine's own role."""
    machine = list(statements(role_of(cfn, "RotationStateMachine", "RoleArn")))
    member = list(statements(cfn["Resources"]["MemberRole"]["Properties"]))
    for name, task in tasks(asl):
        match = re.search(r":aws-sdk:([a-z0-9]+):(\w+)$", task["Resource"])
        if match:
            action = f"{IAM_SERVICE.get(match.group(1), match.group(1))}:{match.group(2)[0].upper()}{match.group(2)[1:]}"
            in_account = match.group(1) in ("iam", "secretsmanager")
            assert task.get("Credentials") == ({"RoleArn.$": "$.role"} if in_account else None), name
            role = member if in_account else machine
            assert any(grants(s, action) for s in role), f"{name} calls {action}, which its role denies"


# --- 6. parameter validation in the emulator -----------------------------------------------------------------


def test_defaults_and_sensible_overrides_are_accepted(cfn):
    overrides = {"UserPath": "/service-accounts/", "DryRun": "true", "MaxKeyAgeDays": "30"}
    values = parameter_values(cfn, overrides)
    assert values["UserPath"] == "/service-accounts/" and values["MaxKeyAgeDays"] == "30"
    assert parameter_values(cfn)["ScheduleExpression"] == "rate(1 day)"


@pytest.mark.parametrize(
    "name, value",
    [
        ("UserPath", "/service-accounts"),
        ("DryRun", "yes"),
        ("MaxKeyAgeDays", "0"),
        ("ScheduleState", "PAUSED"),
        ("NoSuchParameter", "x"),
    ],
)
def test_bad_override_is_rejected_naming_the_parameter(cfn, name, value):
    with pytest.raises(TemplateError, match=re.escape(name)):
        parameter_values(cfn, {name: value})


# --- 7. operations: no run hangs -----------------------------------------------------------------------------


def test_no_run_hangs_forever(asl):
    # A hung run would make every later run skip itself (single flight): the timeout ends it well before the next
    # day's run, and the alarm fires. Six hours hold 100,000 users at IAM's pace (make bench projects it).
    assert 0 < asl["TimeoutSeconds"] <= 6 * 3600
