"""The Serverless Application Repository (SAR) metadata, the release version and samconfig.toml, read without sam.

The template's SAR metadata is within SAR's limits, its license and readme exist, CHANGELOG.md's newest release is
its SemanticVersion, every resource type (as written and as the SAM transform makes it, emulator.stack.translate)
is one SAR supports, a SAR install acknowledges exactly the capabilities the template needs, and samconfig.toml
holds every non-secret deploy default. No server and no sam run: test_sam_cli.py runs sam once for what needs it
(and takes the template fixtures and SAR_INSTALL_CAPABILITIES from here).
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from emulator.stack import translate

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
CHANGELOG = ROOT / "CHANGELOG.md"
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
