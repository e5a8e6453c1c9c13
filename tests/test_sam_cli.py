"""The sam CLI path, proven offline, and the Serverless Application Repository (SAR) metadata.

One module-scoped fixture runs the real `sam build`, `sam package` and `sam deploy --no-execute-changeset` once,
against a moto server on loopback (AWS_ENDPOINT_URL), with fake credentials. The tests then check what really
happened: every local path in the template was replaced by an S3 object that holds that file, CloudFormation
(moto) holds a change set, ready to execute, for every resource, and `sam publish` would send SAR a valid request.

moto does not run the SAM transform (a change set lists the template's own resources) and has no SAR API, so the
transformed stack and the publish itself are checked without a server: the template through the SAM translator
(emulator.stack.translate), and the publish request against SAR's API model in botocore.
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
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters
from samcli.vendor.serverlessrepo.publish import publish_application
from samtranslator.yaml_helper import yaml_parse

from emulator.stack import translate

# Its module fixture starts sam and a moto server once for every test here (make test keeps a module on one worker).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
CHANGELOG = ROOT / "CHANGELOG.md"
SAM = Path(sys.executable).with_name("sam")  # the sam of the virtualenv running the tests
BUCKET = "iam-key-rotation-artifacts"
STACK = "iam-key-rotation-sam-cli-test"
SENDER = "key-rotation@example.com"
HOME = "https://github.com/iam-key-rotation/iam-access-key-rotation"

# --- what the Serverless Application Repository accepts ------------------------------------------------------

# "List of Supported AWS Resources", https://docs.aws.amazon.com/serverlessrepo/latest/devguide/list-supported-resources.html
# ("This is the complete list of AWS resources that are supported by the AWS Serverless Application Repository").
# Copied from the guide's source, github.com/awsdocs/aws-serverlessrepo-developer-guide,
# doc_source/list-supported-resources.md at commit 83c2822c2920f510ab20a59156dec5ec2e8e779c (the newest stored
# there). The live page has grown since (it starts with AWS::AmazonMQ::*), but its full text was not available
# here: add a type only with a citation of the page that lists it.
SAR_SUPPORTED_RESOURCE_TYPES = frozenset(
    """
    AWS::AccessAnalyzer::Analyzer
    AWS::ApiGateway::ApiKey AWS::ApiGateway::Authorizer AWS::ApiGateway::BasePathMapping
    AWS::ApiGateway::ClientCertificate AWS::ApiGateway::Deployment AWS::ApiGateway::DocumentationPart
    AWS::ApiGateway::DocumentationVersion AWS::ApiGateway::DomainName AWS::ApiGateway::GatewayResponse
    AWS::EC2::SecurityGroup AWS::ApiGateway::Method AWS::ApiGateway::Model AWS::ApiGateway::RequestValidator
    AWS::ApiGateway::Resource AWS::ApiGateway::RestApi AWS::ApiGateway::Stage AWS::ApiGateway::UsagePlan
    AWS::ApiGateway::UsagePlanKey AWS::ApiGateway::VpcLink
    AWS::ApiGatewayV2::Api AWS::ApiGatewayV2::ApiMapping AWS::ApiGatewayV2::Authorizer AWS::ApiGatewayV2::DomainName
    AWS::ApiGatewayV2::Deployment AWS::ApiGatewayV2::Integration AWS::ApiGatewayV2::IntegrationResponse
    AWS::ApiGatewayV2::Model AWS::ApiGatewayV2::Route AWS::ApiGatewayV2::RouteResponse AWS::ApiGatewayV2::Stage
    AWS::AppSync::ApiKey AWS::AppSync::DataSource AWS::AppSync::GraphQLApi AWS::AppSync::GraphQLSchema
    AWS::AppSync::Resolver
    AWS::ApplicationAutoScaling::ScalableTarget AWS::ApplicationAutoScaling::ScalingPolicy
    AWS::Athena::NamedQuery
    AWS::CertificateManager::Certificate
    AWS::CloudFormation::CustomResource AWS::CloudFormation::Interface AWS::CloudFormation::Macro
    AWS::CloudFormation::WaitConditionHandle
    AWS::CloudFront::CloudFrontOriginAccessIdentity AWS::CloudFront::Distribution
    AWS::CloudFront::StreamingDistribution
    AWS::CloudTrail::Trail
    AWS::CloudWatch::Alarm AWS::CloudWatch::AnomalyDetector AWS::CloudWatch::Dashboard AWS::CloudWatch::InsightRule
    AWS::CodeBuild::Project
    AWS::CodeCommit::Repository
    AWS::CodePipeline::CustomActionType AWS::CodePipeline::Pipeline AWS::CodePipeline::Webhook
    AWS::Cognito::IdentityPool AWS::Cognito::IdentityPoolRoleAttachment AWS::Cognito::UserPool
    AWS::Cognito::UserPoolClient AWS::Cognito::UserPoolDomain AWS::Cognito::UserPoolGroup
    AWS::Cognito::UserPoolResourceServer AWS::Cognito::UserPoolUser AWS::Cognito::UserPoolUserToGroupAttachment
    AWS::Config::AggregationAuthorization AWS::Config::ConfigRule AWS::Config::ConfigurationAggregator
    AWS::Config::ConfigurationRecorder AWS::Config::DeliveryChannel AWS::Config::RemediationConfiguration
    AWS::DataPipeline::Pipeline
    AWS::DynamoDB::Table
    AWS::ECR::Repository
    AWS::Elasticsearch::Domain
    AWS::Events::EventBusPolicy AWS::Events::Rule
    AWS::EventSchemas::Discoverer AWS::EventSchemas::Registry AWS::EventSchemas::Schema
    AWS::Glue::Classifier AWS::Glue::Connection AWS::Glue::Crawler AWS::Glue::Database AWS::Glue::DevEndpoint
    AWS::Glue::Job AWS::Glue::Partition AWS::Glue::Table AWS::Glue::Trigger
    AWS::IAM::Group AWS::IAM::InstanceProfile AWS::IAM::ManagedPolicy AWS::IAM::Policy AWS::IAM::Role
    AWS::IoT::Certificate AWS::IoT::Policy AWS::IoT::PolicyPrincipalAttachment AWS::IoT::Thing
    AWS::IoT::ThingPrincipalAttachment AWS::IoT::TopicRule
    AWS::KMS::Alias AWS::KMS::Key
    AWS::Kinesis::Stream AWS::Kinesis::StreamConsumer AWS::Kinesis::Streams
    AWS::KinesisAnalytics::Application AWS::KinesisAnalytics::ApplicationOutput
    AWS::KinesisFirehose::DeliveryStream
    AWS::Lambda::Alias AWS::Lambda::EventInvokeConfig AWS::Lambda::EventSourceMapping AWS::Lambda::Function
    AWS::Lambda::LayerVersion AWS::Lambda::LayerVersionPermission AWS::Lambda::Permission AWS::Lambda::Version
    AWS::Logs::Destination AWS::Logs::LogGroup AWS::Logs::LogStream AWS::Logs::MetricFilter
    AWS::Logs::SubscriptionFilter
    AWS::Route53::HealthCheck AWS::Route53::HostedZone AWS::Route53::RecordSet AWS::Route53::RecordSetGroup
    AWS::S3::Bucket AWS::S3::BucketPolicy
    AWS::SNS::Subscription AWS::SNS::Topic AWS::SNS::TopicPolicy
    AWS::SQS::Queue AWS::SQS::QueuePolicy
    AWS::SSM::Association AWS::SSM::Document AWS::SSM::MaintenanceWindowTask AWS::SSM::Parameter
    AWS::SSM::PatchBaseline AWS::SSM::ResourceDataSync
    AWS::Serverless::Api AWS::Serverless::Application AWS::Serverless::Function AWS::Serverless::HttpApi
    AWS::Serverless::LayerVersion AWS::Serverless::SimpleTable AWS::Serverless::StateMachine
    AWS::StepFunctions::Activity AWS::StepFunctions::StateMachine
    """.split()
)

# "Application Capabilities: IAM Roles, Resource Policies, and Nested Applications",
# https://docs.aws.amazon.com/serverlessrepo/latest/devguide/acknowledging-application-capabilities.html and
# "Using AWS SAM with the AWS Serverless Application Repository" (using-aws-sam.html): a SAR deployer acknowledges
# CAPABILITY_IAM (or CAPABILITY_NAMED_IAM for custom names) for these IAM types, CAPABILITY_RESOURCE_POLICY for
# the resource policies, and CAPABILITY_AUTO_EXPAND for nested applications.
SAR_IAM_TYPES = {"AWS::IAM::Group", "AWS::IAM::InstanceProfile", "AWS::IAM::Policy", "AWS::IAM::Role"}
SAR_RESOURCE_POLICY_TYPES = {
    "AWS::Lambda::LayerVersionPermission", "AWS::Lambda::Permission", "AWS::Events::EventBusPolicy",
    "AWS::IAM::Policy", "AWS::ApplicationAutoScaling::ScalingPolicy", "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
}
# What docs/deploying.md's SAR install command acknowledges; this test fails when the template needs something else.
SAR_INSTALL_CAPABILITIES = {"CAPABILITY_NAMED_IAM", "CAPABILITY_RESOURCE_POLICY"}  # named roles (the member roles trust them); the run bucket's TLS-only policy

# CloudFormation's own rule (CreateChangeSet "Capabilities"): IAM resources need CAPABILITY_IAM, and
# CAPABILITY_NAMED_IAM when they have custom names.
CFN_IAM_NAME_PROPERTY = {
    "AWS::IAM::Role": "RoleName", "AWS::IAM::User": "UserName", "AWS::IAM::Group": "GroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName", "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::Policy": None, "AWS::IAM::AccessKey": None, "AWS::IAM::UserToGroupAddition": None,
}

# "AWS SAM template Metadata section properties",
# https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-sam-template-publishing-applications-metadata-properties.html
SAR_NAME = re.compile(r"[a-zA-Z0-9\-]{1,140}")
SAR_AUTHOR = re.compile(r"^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$")
SAR_LABEL = re.compile(r"^[a-zA-Z0-9+\-_:/@]+$")
SAR_FILE_MAX_BYTES = 5 * 1024 * 1024  # LicenseUrl and ReadmeUrl: "Maximum size 5 MB"
SEMVER = re.compile(  # https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
SAR_FIELDS = (
    "Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "Labels", "HomePageUrl",
    "SemanticVersion", "SourceCodeUrl",
)


# --- the template as written and as translated ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def sar(sam_template) -> dict:
    return sam_template["Metadata"]["AWS::ServerlessRepo::Application"]


@pytest.fixture(scope="module")
def cfn() -> dict:
    return translate()


def resource_types(*templates: dict) -> set[str]:
    return {r["Type"] for t in templates for r in t["Resources"].values()}


def cloudformation_capabilities(cfn: dict) -> set[str]:
    """The capabilities CloudFormation demands before it creates this stack's IAM resources."""
    iam = [r for r in cfn["Resources"].values() if r["Type"] in CFN_IAM_NAME_PROPERTY]
    if not iam:
        return set()
    named = any(CFN_IAM_NAME_PROPERTY[r["Type"]] in r.get("Properties", {}) for r in iam)
    return {"CAPABILITY_NAMED_IAM" if named else "CAPABILITY_IAM"}


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
        # directory (its build section: cached, parallel); the cache lands in the working directory.
        _sam(["build", "--template-file", str(TEMPLATE), "--build-dir", str(build_dir)], cwd=work, env=env)
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
        # test_samconfig_holds_every_non_secret_deploy_default says why).
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


# --- SAR metadata, version and limits (no server) ---------------------------------------------------------------


def test_sar_metadata_has_every_field_within_sars_limits(sar):
    assert [f for f in SAR_FIELDS if not sar.get(f)] == [], "missing SAR metadata"
    for field, value in sar.items():  # SAR takes no intrinsic functions here
        assert isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)), field
    assert SAR_NAME.fullmatch(sar["Name"])
    assert 1 <= len(sar["Description"]) <= 256
    assert 1 <= len(sar["Author"]) <= 127 and SAR_AUTHOR.match(sar["Author"]), sar["Author"]
    assert 1 <= len(sar["Labels"]) <= 10
    assert all(1 <= len(label) <= 127 and SAR_LABEL.match(label) for label in sar["Labels"]), sar["Labels"]
    assert SEMVER.match(sar["SemanticVersion"]), sar["SemanticVersion"]
    assert sar["HomePageUrl"] == sar["SourceCodeUrl"] == HOME


def test_sar_license_and_readme_files_exist(sar):
    for field in ("LicenseUrl", "ReadmeUrl"):
        local = TEMPLATE.parent / sar[field]
        assert local.is_file(), f"{field}: {local} does not exist"
        assert 0 < local.stat().st_size <= SAR_FILE_MAX_BYTES, f"{field}: {local} is empty or over 5 MB"
    assert sar["SpdxLicenseId"] == "MIT-0"
    assert (TEMPLATE.parent / sar["LicenseUrl"]).read_text().splitlines()[0] == "MIT No Attribution"


RELEASE_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\S+))?\s*$", re.MULTILINE)


def test_changelog_newest_release_is_the_template_version(sar):
    text = CHANGELOG.read_text()
    headings = [(m["version"], m["date"]) for m in RELEASE_HEADING.finditer(text)]
    released = [(v, d) for v, d in headings if v != "Unreleased"]
    assert released, "CHANGELOG.md has no release"
    assert headings[0][0] in ("Unreleased", released[0][0]), "Unreleased, if present, comes first"
    newest, released_on = released[0]
    assert newest == sar["SemanticVersion"], (
        f"CHANGELOG.md's newest release is {newest}, template.yaml's SemanticVersion is {sar['SemanticVersion']}"
    )
    versions = []
    for version, day in released:
        assert SEMVER.match(version), version
        date.fromisoformat(day)  # each release has a YYYY-MM-DD date
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.MULTILINE), f"no link for {version}"
        versions.append(tuple(int(n) for n in version.split("-")[0].split(".")))
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions), "newest first"
    assert date.fromisoformat(released_on) <= date.today()


def test_every_resource_type_is_one_sar_supports(sam_template, cfn):
    """Every type in the template and in what the SAM transform makes of it is on SAR's supported list."""
    used = resource_types(sam_template, cfn)
    unsupported = sorted(used - SAR_SUPPORTED_RESOURCE_TYPES)
    assert not unsupported, f"SAR does not list {unsupported}"


def test_sar_install_acknowledges_exactly_the_capabilities_the_template_needs(cfn):
    types = resource_types(cfn)
    needed = set()
    if types & SAR_IAM_TYPES:
        needed |= cloudformation_capabilities(cfn)
    if types & SAR_RESOURCE_POLICY_TYPES:
        needed.add("CAPABILITY_RESOURCE_POLICY")
    if "AWS::Serverless::Application" in types:
        needed.add("CAPABILITY_AUTO_EXPAND")
    assert needed == SAR_INSTALL_CAPABILITIES


def test_samconfig_holds_every_non_secret_deploy_default(cfn):
    """`sam deploy --guided` then asks only for the region and the parameters.

    resolve_s3 (SAM's managed artifact bucket) is the one default the moto test cannot exercise: SAM creates the
    stack aws-sam-cli-managed-default through a change set, and moto 5.2.5 builds a stack's outputs when the stack
    is created, before that change set runs, so DescribeStacks returns no Outputs and sam refuses the stack as
    "missing Tags and/or Outputs information".
    """
    config = tomllib.loads(SAMCONFIG.read_text())
    assert config["version"] == 0.1
    default = config["default"]
    assert default["global"]["parameters"]["stack_name"] == "iam-key-rotation"
    deploy = default["deploy"]["parameters"]
    assert set(deploy["capabilities"].split()) == cloudformation_capabilities(cfn)
    assert deploy["confirm_changeset"] is True and deploy["resolve_s3"] is True
    assert deploy["s3_prefix"] == default["package"]["parameters"]["s3_prefix"] == "iam-key-rotation"
    assert deploy["fail_on_empty_changeset"] is False and deploy["disable_rollback"] is False
    assert "parameter_overrides" not in deploy, "parameter defaults belong in template.yaml"
    assert default["validate"]["parameters"]["lint"] is True
