"""The sam CLI path, proven offline, and the Serverless Application Repository (SAR) metadata.

One module-scoped fixture runs the real `sam build`, `sam package` and `sam deploy --no-execute-changeset` once,
against a moto server on loopback (AWS_ENDPOINT_URL), with fake credentials. The tests then check what really
happened: every local path in the template was replaced by an S3 object that holds that file, CloudFormation
(moto) holds a change set, ready to execute, for every resource, and `sam publish` would send SAR a valid request.

moto does not run the SAM transform (a change set lists the template's own resources) and has no SAR API, so the
transformed stack and the publish itself are checked without a server: the template through the SAM translator
(emulator.stack.translate, in test_sar_metadata.py), and the publish request against SAR's API model in botocore.
The checks of the template, CHANGELOG.md and samconfig.toml that need no sam run are in test_sar_metadata.py.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

import boto3
import botocore.session
import pytest
import tool_cache
from botocore.validate import validate_parameters
from samcli.vendor.serverlessrepo.publish import publish_application
from samtranslator.yaml_helper import yaml_parse

# The template as written (sam_template, sar): fixtures of test_sar_metadata.py, which checks the SAR metadata without
# sam. SAR_INSTALL_CAPABILITIES is checked there and stays importable from here.
from test_sar_metadata import SAR_INSTALL_CAPABILITIES, sam_template, sar  # noqa: F401

# Its module fixture starts sam and a moto server once for every test here (make test keeps a module on one worker).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
SAM = Path(sys.executable).with_name("sam")  # the sam of the virtualenv running the tests
BUCKET = "iam-key-rotation-artifacts"
STACK = "iam-key-rotation-sam-cli-test"
SENDER = "key-rotation@example.com"


# --- the sam CLI against a moto server ------------------------------------------------------------------------


def _missing_moto_server_packages() -> list[str]:
    """Packages of moto's `server` extra (Flask app, CloudFormation and S3 backends) that are not installed."""
    missing = []
    for requirement in importlib.metadata.requires("moto") or []:
        if 'extra == "server"' not in requirement:
            continue
        name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_answers(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto server exited with {server.returncode} before answering:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"moto server did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def _sam(args: list[str], *, cwd: Path, env: dict) -> str:
    result = subprocess.run(
        [str(SAM), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        pytest.fail(
            f"sam {' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def sam_cli(tmp_path_factory):
    """`sam build`, `sam package` and `sam deploy --no-execute-changeset`, once, against a moto server."""
    missing = _missing_moto_server_packages()
    if missing:
        pytest.fail(
            "moto's server extra is not installed (missing: " + ", ".join(missing) + "). The sam CLI tests need a "
            "moto server with its CloudFormation and S3 backends: add `server` to moto's extras in "
            "requirements.txt and run `make lock`."
        )
    work = tmp_path_factory.mktemp("sam-cli")
    port = _free_port()
    # "localhost", not 127.0.0.1: moto finds the bucket of a CreateChangeSet TemplateURL in the URL's path only
    # when the host is localhost (moto.cloudformation.utils.get_stack_from_s3_url); otherwise it takes the host's
    # first label ("127") as the bucket name.
    endpoint = f"http://localhost:{port}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAM_")) or k == "SAM_CLI_TELEMETRY"
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(work / "no-aws-config"),  # nothing from ~/.aws may redirect the calls
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials"),
            "SAM_CLI_TELEMETRY": "0",
        }
    )
    log = work / "moto_server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )
    try:
        build_dir = work / "build"
        # The build needs no server, so it runs while the server starts. samconfig.toml is read from the template's
        # directory (its build section: cached, parallel); the cache lands in the working directory. A build of the
        # same template, code, samconfig and sam is copied from .pytest-tool-cache instead (tests/tool_cache.py).
        build = ["build", "--template-file", str(TEMPLATE), "--build-dir", str(build_dir)]
        tool_cache.directory([str(SAM), *build], inputs=tool_cache.referenced_paths(TEMPLATE), cwd=work,
                             output=build_dir, produce=lambda: _sam(build, cwd=work, env=env), env=env,
                             env_prefixes=("SAM_",))
        _wait_until_answers(f"http://127.0.0.1:{port}/moto-api/", server, log)

        clients = {
            service: boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            for service in ("s3", "cloudformation")
        }
        clients["s3"].create_bucket(Bucket=BUCKET)

        packaged = work / "packaged.yaml"
        _sam(["package", "--template-file", str(build_dir / "template.yaml"), "--s3-bucket", BUCKET,
              "--output-template-file", str(packaged)], cwd=work, env=env)

        built = yaml_parse((build_dir / "template.yaml").read_text())
        overrides = [f"SenderEmail={SENDER}"] if "SenderEmail" in built.get("Parameters", {}) else []
        # The project's samconfig.toml gives the capabilities and the other deploy defaults, as for `make deploy`.
        # Its resolve_s3 is switched off: moto cannot serve SAM's managed bucket stack (the docstring of
        # test_samconfig_holds_every_non_secret_deploy_default, in test_sar_metadata.py, says why).
        output = _sam(
            ["deploy", "--config-file", str(SAMCONFIG), "--template-file", str(packaged), "--stack-name", STACK,
             "--s3-bucket", BUCKET, "--no-resolve-s3", "--no-execute-changeset", "--no-progressbar",
             *(["--parameter-overrides", *overrides] if overrides else [])],
            cwd=work, env=env,
        )
        change_set = re.search(r"Changeset created successfully\.\s*(arn:\S+)", output)
        assert change_set, f"sam deploy printed no change set ARN:\n{output[-3000:]}"

        yield SimpleNamespace(
            build_dir=build_dir,
            built=built,
            packaged_text=packaged.read_text(),
            packaged=yaml_parse(packaged.read_text()),
            change_set_arn=change_set.group(1),
            deploy_output=output,
            overrides=overrides,
            s3=clients["s3"],
            cloudformation=clients["cloudformation"],
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def local_paths(node, build_dir: Path, path=()):
    """(location in the template, value) of every string that names a file or directory beside the template."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" or key.startswith("Fn::"):  # names of resources and parameters, not of files
                continue
            yield from local_paths(value, build_dir, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from local_paths(value, build_dir, (*path, i))
    elif (
        isinstance(node, str)
        and node
        and "://" not in node
        and not Path(node).is_absolute()
        and Path(node).name not in ("", ".", "..")
        and (build_dir / node).exists()
    ):
        yield path, node


def at(template: dict, path: tuple):
    for key in path:
        template = template[key]
    return template


def s3_location(value) -> tuple[str, str] | None:
    """(bucket, key) of `s3://bucket/key` or of an S3Location {Bucket, Key}; None for anything else."""
    if isinstance(value, str) and value.startswith("s3://"):
        bucket, _, key = value[len("s3://"):].partition("/")
        return bucket, key
    if isinstance(value, dict) and {"Bucket", "Key"} <= set(value):
        return value["Bucket"], value["Key"]
    return None


@pytest.fixture(scope="module")
def uploads(sam_cli) -> dict[tuple, tuple[Path, str, str]]:
    """Location in the template -> (local file or directory, bucket, key) it was packaged to."""
    # Only resource properties and the SAR metadata name artifacts (a resource's Metadata.SamResourceId does not).
    sections = {
        "Resources": {n: {"Properties": r.get("Properties", {})} for n, r in sam_cli.built["Resources"].items()},
        "Metadata": {
            k: v for k, v in sam_cli.built.get("Metadata", {}).items() if k == "AWS::ServerlessRepo::Application"
        },
    }
    found = {}
    for path, value in local_paths(sections, sam_cli.build_dir):
        packaged = at(sam_cli.packaged, path)
        location = s3_location(packaged)
        assert location, f"{'.'.join(map(str, path))} is still {packaged!r} after sam package: not an S3 location"
        found[path] = ((sam_cli.build_dir / value).resolve(), *location)
    return found


def test_package_puts_every_local_path_of_the_template_in_s3(sam_cli, uploads):
    # What must have been a local path: each function's code, each state machine's definition file (DefinitionUri
    # of AWS::Serverless::StateMachine or DefinitionS3Location of AWS::StepFunctions::StateMachine), and the
    # SAR license and readme.
    expected = {("Metadata", "AWS::ServerlessRepo::Application", key) for key in ("LicenseUrl", "ReadmeUrl")}
    for name, resource in sam_cli.built["Resources"].items():
        props = resource.get("Properties", {})
        for prop in ("CodeUri", "DefinitionUri", "DefinitionS3Location"):
            if isinstance(props.get(prop), str):
                expected.add(("Resources", name, "Properties", prop))
    assert any(p[-1] == "CodeUri" for p in expected), "the built template has no function with local code"
    assert any(p[-1] in ("DefinitionUri", "DefinitionS3Location") for p in expected), "no local definition file"
    assert expected <= set(uploads), f"not packaged: {sorted(expected - set(uploads))}"
    assert {bucket for _, bucket, _ in uploads.values()} == {BUCKET}


def test_the_s3_objects_hold_the_local_files(sam_cli, uploads):
    for path, (local, bucket, key) in uploads.items():
        body = sam_cli.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if local.is_file():
            assert body == local.read_bytes(), f"s3://{bucket}/{key} differs from {local}"
            continue
        with zipfile.ZipFile(io.BytesIO(body)) as archive:  # a code directory is uploaded as a zip of its files
            files = {p.relative_to(local).as_posix(): p for p in local.rglob("*") if p.is_file()}
            assert files, f"{local} is empty"
            assert set(files) <= set(archive.namelist()), f"{path}: zip lacks {set(files) - set(archive.namelist())}"
            for name, file in files.items():
                assert archive.read(name) == file.read_bytes(), f"{name} differs in s3://{bucket}/{key}"


def test_the_state_machine_definition_is_packaged_with_its_placeholders(sam_cli, uploads):
    definitions = [v for p, v in uploads.items() if p[-1] in ("DefinitionUri", "DefinitionS3Location")]
    assert definitions
    for local, bucket, key in definitions:
        text = sam_cli.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        assert '"StartAt"' in text and "${" in text  # CloudFormation substitutes DefinitionSubstitutions later


def test_deploy_leaves_a_change_set_ready_for_every_resource(sam_cli):
    change_set = sam_cli.cloudformation.describe_change_set(ChangeSetName=sam_cli.change_set_arn)
    assert change_set["StackName"] == STACK
    assert change_set["Status"] == "CREATE_COMPLETE", change_set.get("StatusReason")
    assert change_set["ExecutionStatus"] == "AVAILABLE"  # created, not executed: --no-execute-changeset
    stack = sam_cli.cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "REVIEW_IN_PROGRESS"
    changes = {
        c["ResourceChange"]["LogicalResourceId"]: (c["ResourceChange"]["Action"], c["ResourceChange"]["ResourceType"])
        for c in change_set["Changes"]
    }
    assert changes == {name: ("Add", r["Type"]) for name, r in sam_cli.packaged["Resources"].items()}


def test_deploy_passes_the_parameter_overrides(sam_cli):
    assert sam_cli.overrides, "the template has no SenderEmail parameter to override"
    change_set = sam_cli.cloudformation.describe_change_set(ChangeSetName=sam_cli.change_set_arn)
    assert {"ParameterKey": "SenderEmail", "ParameterValue": SENDER} in change_set["Parameters"]
    assert f'"SenderEmail": "{SENDER}"' in sam_cli.deploy_output
    capabilities = tomllib.loads(SAMCONFIG.read_text())["default"]["deploy"]["parameters"]["capabilities"]
    shown = re.search(r"^\s*Capabilities\s*:\s*(\[.*\])\s*$", sam_cli.deploy_output, re.MULTILINE)
    assert shown and json.loads(shown[1]) == capabilities.split(), "sam deploy did not take samconfig's capabilities"


class RecordingServerlessRepo:
    """Stands in for the SAR client that `sam publish` calls: records each request, creates nothing."""

    def __init__(self):
        self.requests = []

    def create_application(self, **request):
        self.requests.append(request)
        return {"ApplicationId": "arn:aws:serverlessrepo:us-east-1:123456789012:applications/" + request["Name"]}


def test_sam_publish_sends_a_valid_create_application(sam_cli, sar):
    """The request `sam publish --template <packaged>` sends, checked against SAR's API model in botocore.

    SAR itself is not available offline (moto has no serverlessrepo): its server-side checks (supported
    resource types, read access to the bucket, an existing version) are not exercised here.
    """
    repo = RecordingServerlessRepo()
    result = publish_application(template=sam_cli.packaged_text, sar_client=repo)
    assert result["actions"] == ["CREATE_APPLICATION"]
    (request,) = repo.requests
    model = botocore.session.get_session().get_service_model("serverlessrepo")
    validate_parameters(request, model.operation_model("CreateApplication").input_shape)  # raises if invalid
    for field in ("Name", "Description", "Author", "SpdxLicenseId", "Labels", "HomePageUrl", "SemanticVersion",
                  "SourceCodeUrl"):
        assert request[field] == sar[field], field
    for field, local in (("LicenseUrl", ROOT / "LICENSE"), ("ReadmeUrl", ROOT / sar["ReadmeUrl"])):
        bucket, key = s3_location(request[field])
        assert sam_cli.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == local.read_bytes()
    published = yaml_parse(request["TemplateBody"])
    assert "AWS::ServerlessRepo::Application" not in published.get("Metadata", {})
    assert published["Resources"].keys() == sam_cli.packaged["Resources"].keys()
