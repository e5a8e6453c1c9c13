"""emulator/speed.py and deployments.py change no answer: a deployment restored from the cache is the account a
fresh deployment gives, and runs on it do the same; a client reused in a later account is as new; a kept program
is the parsed one; the interpreter's copies are deepcopy's."""

import contextlib
import copy
import json
import pickle

import boto3
import pytest

from emulator import deployments, speed, stack
from emulator.runner import Emulator

# Parameters no other test uses, so the first account below deploys through the API.
PARAMETERS = {"SenderEmail": "rotation@example.com", "NotificationEmails": "team@example.com", "NoticeDays": "5"}
FIXTURE = {
    "start": "2026-01-05T06:00:00Z",
    "verifiedEmails": ["rotation@example.com"],
    "users": [{"name": "app", "tags": {"KeyRotation": "enabled"}, "keys": [{"ageDays": 85, "inSecret": True}]}],
}


def deployed_account() -> dict:
    """What the stack created, as the APIs describe it."""
    iam, functions, sfn, s3, sns = (stack.client(s) for s in ("iam", "lambda", "stepfunctions", "s3", "sns"))
    roles = {
        r["RoleName"]: {
            "arn": r["Arn"], "created": r["CreateDate"].isoformat(), "trust": r["AssumeRolePolicyDocument"],
            "policies": {p: iam.get_role_policy(RoleName=r["RoleName"], PolicyName=p)["PolicyDocument"]
                         for p in iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]},
        }
        for r in iam.list_roles()["Roles"]
    }
    lambdas = {
        f["FunctionName"]: {k: f.get(k) for k in ("Role", "Handler", "Runtime", "Timeout", "MemorySize", "Environment")}
        for f in functions.list_functions()["Functions"]
    }
    machines = [
        {k: d[k] for k in ("name", "definition", "roleArn")}
        for m in sfn.list_state_machines()["stateMachines"]
        for d in [sfn.describe_state_machine(stateMachineArn=m["stateMachineArn"])]
    ]
    buckets = {
        b["Name"]: {
            "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=b["Name"])["Rules"],
            "public access": s3.get_public_access_block(Bucket=b["Name"])["PublicAccessBlockConfiguration"],
        }
        for b in s3.list_buckets()["Buckets"]
    }
    topics = sorted(t["TopicArn"] for t in sns.list_topics()["Topics"])
    return json.loads(json.dumps(
        {"roles": roles, "functions": lambdas, "machines": machines, "buckets": buckets, "topics": topics}, default=str
    ))


def first_run(aws: Emulator) -> dict:
    run = aws.scheduled_run()
    return {"status": run.status, "output": run.output, "emails": [(e.subject, e.body) for e in run.emails],
            "keys": aws.account_users()}


def test_a_restored_deployment_is_the_account_a_fresh_one_gives_and_runs_the_same():
    key = json.dumps([PARAMETERS, 0, "2026-01-05T06:00:00.000Z"], sort_keys=True)
    assert key not in deployments._deployments  # so the first account below deploys through the API

    with Emulator(FIXTURE, PARAMETERS) as fresh:
        assert key in deployments._deployments
        fresh_account, fresh_run = deployed_account(), first_run(fresh)
    with Emulator(FIXTURE, PARAMETERS) as restored:
        restored_account, restored_run = deployed_account(), first_run(restored)
        log_backends = {id(f.logs_backend) for f in _lambda_backend().list_functions()}
        live_log_backend = id(_logs_backend())

    assert len(fresh_account["roles"]) >= 8 and len(fresh_account["functions"]) == 7
    assert restored_account == fresh_account
    assert restored_run == fresh_run and fresh_run["status"] == "SUCCEEDED"
    assert log_backends == {live_log_backend}  # a restored function logs to the account's log backend


def _lambda_backend():
    from moto.awslambda_simple.models import lambda_simple_backends

    return lambda_simple_backends[stack.ACCOUNT_ID][stack.REGION]


def _logs_backend():
    from moto.logs.models import logs_backends

    return logs_backends[stack.ACCOUNT_ID][stack.REGION]



def _handler_table(events) -> dict:
    """Each event name of a session's or a client's handler table, with its handlers in order (by name)."""
    found = {}

    def walk(node, path):
        if node["values"]:
            found[".".join(path)] = [getattr(h, "__qualname__", repr(type(h))) for part in node["values"] for h in part]
        for chunk, child in node["children"].items():
            walk(child, (*path, chunk))

    walk(events._emitter._handlers._root, ())
    return found


def test_sessions_and_clients_made_under_the_patches_register_the_same_handlers_and_refuse_the_same():
    """The shared alias cache and the **kwargs check kept per function (speed._sessions_set_up_once)."""

    def made():
        session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
        client = session.client("secretsmanager")
        return _handler_table(session._session.get_component("event_emitter")), _handler_table(client.meta.events)

    def without_kwargs(params):
        return None

    plain = made()
    with contextlib.ExitStack() as patches:  # these patches only (faster_emulation replaces a user agent handler)
        for patch in speed._sessions_set_up_once():
            patches.enter_context(patch)
        patched, again = made(), made()  # the second from the caches the first filled
        for _ in range(2):  # refused the first time, and the next (from the kept answer)
            with pytest.raises(ValueError, match="must accept keyword"):
                boto3.Session().events.register("before-call.s3", without_kwargs)
    assert patched == plain and again == plain
    assert len(plain[0]) > 50 and len(plain[1]) > 50


def test_moto_finds_every_request_s_handler_in_the_same_url_table_built_once():
    from moto.iam.models import iam_backends
    from moto.s3.models import s3_backends
    from moto.secretsmanager.models import secretsmanager_backends

    backends = [s3_backends["123456789012"]["aws"], iam_backends["123456789012"]["global"],
                secretsmanager_backends["123456789012"]["us-east-1"]]
    plain = [b.urls for b in backends]
    with speed.faster_emulation():
        built_once = [b.urls for b in backends]
        again = [b.urls for b in backends]
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MOTO_S3_CUSTOM_ENDPOINTS", "https://s3.internal.example")  # a setting the table reads
            custom = backends[0].urls

    assert built_once == plain and again == plain and all(plain)
    assert any("s3.internal.example" in url for url in custom) and not any("s3.internal.example" in url for url in plain[0])


def _retry_capacity(client) -> int:
    return speed._ORIGINALS["retry quotas"][client]._quota.available_capacity


def test_a_client_asked_for_again_in_a_later_account_is_an_earlier_ones_with_its_retry_quota_full_again():
    """speed._clients_made_once: within an account a client per request, as botocore makes them; in the next, the
    earlier ones again, as new (a full retry quota), each to one caller; a client of other arguments, another
    session, another environment or keys of its own is made anew."""
    from botocore.config import Config

    def session():
        return boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")

    first_session, other_session = session(), session()

    def made(of=first_session, **arguments):
        return of.client("iam", config=Config(retries={"mode": "standard", "max_attempts": 8}), **arguments)

    def own_keys():
        return made(aws_access_key_id="c", aws_secret_access_key="d")

    with speed.faster_emulation():
        first, second, own = made(), made(), own_keys()
        full = _retry_capacity(first)
        speed._ORIGINALS["retry quotas"][first]._quota.acquire(full)  # a run of retries drained it
        assert _retry_capacity(first) == 0
    with speed.faster_emulation():
        # Asked for first in this account, so that an earlier client would be free to give if the key missed them.
        elsewhere = [made(region_name="eu-west-1"), made(of=other_session), own_keys()]
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_MAX_ATTEMPTS", "3")  # a setting a new client reads
            elsewhere.append(made())
        again = [made(), made(), made()]

    assert first is not second
    assert again[:2] in ([first, second], [second, first]) and again[2] not in (first, second)
    assert [_retry_capacity(c) for c in again] == [full] * 3 and full > 0
    earlier = {id(c) for c in (first, second, own, *again)}
    assert len({id(c) for c in elsewhere} - earlier) == 4


SMALL_DEFINITION = json.dumps({
    "StartAt": "Pick",
    "States": {
        "Pick": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Each"}],
                 "Default": "Done"},
        "Each": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {
            "StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}, "Next": "Done"},
        "Done": {"Type": "Pass", "Result": {"done": True}, "End": True},
    },
})


def test_a_program_kept_for_the_next_process_is_the_parsers_and_is_read_without_parsing(tmp_path):
    """speed.keep_parsed_programs_in: what the tests' workers share through .pytest-tool-cache/parsed-asl. parse()
    still parses (moto's static analysers need its tree); an execution's program and the check of a definition
    kept come from the file; an unreadable file is parsed again and replaced."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    def refuse(*args):
        raise AssertionError("parsed again")

    def new_process():
        speed._parse_once.cache_clear()
        speed._program_of.cache_clear()

    kept_before = speed._PARSED_PROGRAMS
    try:
        speed.keep_parsed_programs_in(tmp_path)
        with speed.faster_emulation():
            program, tree = AmazonStateLanguageParser.parse(SMALL_DEFINITION)
            (kept,) = tmp_path.iterdir()
            new_process()
            with pytest.MonkeyPatch.context() as patches:
                patches.setitem(speed._ORIGINALS, "parse", refuse)
                patches.setitem(speed._ORIGINALS, "validate", refuse)
                loaded = speed._program_of(SMALL_DEFINITION)
                speed._validated(SMALL_DEFINITION)
            new_process()
            assert AmazonStateLanguageParser.parse(SMALL_DEFINITION)[1] is not None  # parse() parses
            kept.write_bytes(b"torn")
            new_process()
            parsed_again = speed._program_of(SMALL_DEFINITION)
    finally:
        speed.keep_parsed_programs_in(kept_before)

    assert kept.name.endswith(".pickle") and tree is not None
    assert pickle.dumps(loaded) == pickle.dumps(program)  # the same program, state by state
    assert pickle.dumps(parsed_again) == pickle.dumps(program) and pickle.loads(kept.read_bytes()) is not None


def test_the_interpreter_s_values_are_copied_as_deepcopy_copies_them_and_share_nothing_with_the_original():
    """speed._json_copied: moto's copy.deepcopy of states' inputs, outputs and stacks."""
    import datetime
    import importlib
    import inspect
    import re

    from moto.stepfunctions.parser.asl.eval import states

    modules = [importlib.import_module(f"moto.stepfunctions.parser.{name}") for name in speed._COPYING_MODULES]
    value = {"users": [{"user": "app", "keys": ["AKIA1", None], "age": 2.5, "managed": True}],
             "at": datetime.datetime(2026, 1, 5), "pair": (1, [2]), "tags": {"KeyRotation": "enabled"}}
    expected = copy.deepcopy(value)
    with speed.faster_emulation():
        assert all(m.copy.deepcopy is speed._deep_copy for m in modules)
        copied = states.copy.deepcopy(value)

    assert copied == expected and states.copy is copy  # the patch is gone afterwards
    copied["users"][0]["keys"].append("AKIA2")
    copied["pair"][1].append(3)  # not JSON: copied by copy.deepcopy
    copied["tags"]["KeyRotation"] = "disabled"
    assert value == expected
    # Each module uses only what the replacement offers (a moto upgrade calling copy.something else fails here).
    used = {name for m in modules for name in re.findall(r"\bcopy\.(\w+)", inspect.getsource(m))}
    assert used <= {"deepcopy", "copy"}, used
