"""Deploy the real template.yaml into a moto account, as CloudFormation would.

The SAM translator turns template.yaml into the CloudFormation it really deploys (roles, policies, the
schedule). This module resolves that template's intrinsic functions from the parameter values (defaults
plus overrides) and pseudo parameters, substitutes the state machine's DefinitionSubstitutions into the
ASL file, and creates the Lambda function, the roles and the state machine in moto.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from samtranslator.metrics.method_decorator import MetricsMethodWrapperSingleton
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STACK_NAME = "key-rotation"
PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK_NAME,
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/51af3dc0-da77-11e4-872e-1234567db123",
    "AWS::URLSuffix": "amazonaws.com",
}


@functools.cache
def client(service: str):
    """One boto3 client per service for the emulator's own calls, across accounts set up one after another:
    building one costs 8 to 70 ms, and moto intercepts every client's calls while its mock is active, whenever
    the client was made."""
    return boto3.client(service, region_name=REGION)


class TemplateError(Exception):
    """The template or a parameter value cannot be deployed."""


class ParameterError(TemplateError):
    """A parameter value the template does not accept: the person running the emulator gave it."""


class _NoManagedPolicies:
    """The translator asks for AWS managed policy ARNs only if a template names one; this one names none."""

    def load(self):
        return {}


_translated: dict[tuple[str, str], dict] = {}


def translate(template_path: Path = TEMPLATE) -> dict:
    """template.yaml as CloudFormation receives it after the SAM transform (a fresh copy; translated once per
    template text, since a translation takes ~0.2 s and every emulated account needs one)."""
    key = (str(template_path), Path(template_path).read_text())
    if key not in _translated:
        _translated[key] = _translate(template_path)
    return copy.deepcopy(_translated[key])


def _translate(template_path: Path) -> dict:
    """template.yaml as CloudFormation receives it after the SAM transform.

    The translator does not read local files, so local CodeUri, DefinitionUri and DefinitionS3Location are given
    as the S3 locations ``sam package`` would upload them to (bucket ``local``, key = the path); the emulator
    reads the files back.
    """
    sam = yaml_parse(template_path.read_text())
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        for uri in ("CodeUri", "DefinitionUri", "DefinitionS3Location"):
            if isinstance(props.get(uri), str) and not props[uri].startswith("s3://"):
                props[uri] = {"Bucket": "local", "Key": props[uri]}
    translated = transform(sam, dict(PSEUDO_PARAMETERS), _NoManagedPolicies())
    MetricsMethodWrapperSingleton.get_instance().publish()  # to its no-op publisher; else it warns at exit
    return translated


def parameter_values(template: dict, overrides: dict | None = None) -> dict[str, str]:
    """Defaults plus overrides, checked against each parameter's constraints as CloudFormation checks them."""
    declared = template.get("Parameters", {})
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; the template has {', '.join(declared)}")
    values = {}
    for name, spec in declared.items():
        value = str(overrides.get(name, spec.get("Default", "")))
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            raise ParameterError(f"parameter {name}={value!r} is not one of {spec['AllowedValues']}")
        if "AllowedPattern" in spec and not _full_match(spec["AllowedPattern"], value):
            raise ParameterError(f"parameter {name}={value!r}: {spec.get('ConstraintDescription', spec['AllowedPattern'])}")
        if spec.get("Type") == "Number":
            if not re.fullmatch(r"-?\d+", value):
                raise ParameterError(f"parameter {name}={value!r} must be a number")
            if "MinValue" in spec and int(value) < int(spec["MinValue"]):
                raise ParameterError(f"parameter {name}={value} is below its minimum {spec['MinValue']}")
        values[name] = value
    return values


def _full_match(pattern: str, value: str) -> bool:
    # CloudFormation patterns are Java regexes; \p{L}/\p{Z}/\p{N} have no Python `re` spelling, so map them.
    python = pattern.replace(r"\p{L}", "a-zA-Z\u00c0-\uffff").replace(r"\p{Z}", r" ").replace(r"\p{N}", "0-9")
    return re.fullmatch(python, value) is not None


@dataclass
class Resolver:
    """Fn::* and Ref over a translated template, with physical ids for the resources."""

    parameters: dict[str, str]
    conditions: dict[str, bool] = field(default_factory=dict)
    physical: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> {"Ref": .., "Arn": ..}

    def ref(self, name: str):
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.physical:
            return self.physical[name]["Ref"]
        raise TemplateError(f"Ref to unknown name {name}")

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(n) for n in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str) and arg in self.conditions:
                return self.conditions[arg]
            if key.startswith("Fn::"):
                return self._fn(key, arg)
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in node.items()) if r is not _NO_VALUE}

    def _fn(self, key: str, arg):
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.conditions[name] else no)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            try:
                return self.physical[logical][attribute]
            except KeyError:
                raise TemplateError(f"Fn::GetAtt {logical}.{attribute} is not known to the emulator") from None
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            variables = {k: self.resolve(v) for k, v in variables.items()}

            def substitute(match):
                name = match.group(1)
                if name in variables:
                    return str(variables[name])
                if "." in name:
                    return str(self._fn("Fn::GetAtt", name))
                return str(self.ref(name))

            return re.sub(r"\$\{([^!}][^}]*)\}", substitute, text)
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(i) for i in self.resolve(items))
        if key == "Fn::Split":
            separator, text = arg
            return self.resolve(text).split(separator)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        raise TemplateError(f"{key} is not supported by the emulator")


_NO_VALUE = object()


@dataclass
class Deployment:
    """What the emulator deployed: names, ARNs and where each function's code lives."""

    parameters: dict[str, str]
    state_machine_arn: str
    schedule_input: dict  # the schedule's InputTransformer: what the state machine gets from each scheduled event
    functions: dict[str, tuple[Path, str]]
    bucket: str  # the run bucket: created by the stack, or given (RunBucketName)


def resolve(overrides: dict | None = None, template_path: Path = TEMPLATE) -> tuple[dict, Resolver]:
    """The translated template's resources that the parameter values create, and a resolver for their
    properties (``resolver.resolve(resource["Properties"])`` gives what CloudFormation would create)."""
    cfn = translate(template_path)
    resolver = Resolver(parameter_values(cfn, overrides))
    for name, expr in cfn.get("Conditions", {}).items():  # in order: a condition may use an earlier one
        resolver.conditions[name] = bool(resolver.resolve(expr))
    resources = {
        logical: r
        for logical, r in cfn["Resources"].items()
        if "Condition" not in r or resolver.conditions[r["Condition"]]
    }
    for logical, r in resources.items():
        resolver.physical[logical] = _physical_ids(logical, r, resolver)
    return resources, resolver


def deploy(overrides: dict | None = None, template_path: Path = TEMPLATE) -> Deployment:
    """Create the stack's Lambda function, roles and state machine in the current moto account."""
    resources, resolver = resolve(overrides, template_path)

    iam = client("iam")
    for logical, r in _of_type(resources, "AWS::IAM::Role"):
        props = resolver.resolve(r["Properties"])
        iam.create_role(
            RoleName=resolver.physical[logical]["Ref"],
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
        )
        for policy in props.get("Policies", []):
            # AWS accepts a document without Version (SAM's policy templates write none); moto does not.
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
            iam.put_role_policy(
                RoleName=resolver.physical[logical]["Ref"],
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(document),
            )

    s3 = client("s3")
    for logical, r in _of_type(resources, "AWS::S3::Bucket"):
        props = resolver.resolve(r["Properties"])
        s3.create_bucket(Bucket=resolver.physical[logical]["Ref"])
        s3.put_public_access_block(Bucket=props["BucketName"], PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
        rules = [  # CloudFormation's shape of a rule, in the API's
            {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": ""}, "Expiration": {"Days": int(rule["ExpirationInDays"])},
             "AbortIncompleteMultipartUpload": rule["AbortIncompleteMultipartUpload"]}
            for rule in props["LifecycleConfiguration"]["Rules"]
        ]
        s3.put_bucket_lifecycle_configuration(Bucket=props["BucketName"], LifecycleConfiguration={"Rules": rules})

    sns = client("sns")
    for logical, _ in _of_type(resources, "AWS::SNS::Topic"):
        sns.create_topic(Name=resolver.physical[logical]["TopicName"])

    functions = {}
    lambda_client = client("lambda")
    for logical, r in _of_type(resources, "AWS::Lambda::Function"):
        props = resolver.resolve(r["Properties"])
        name = resolver.physical[logical]["Ref"]
        lambda_client.create_function(
            FunctionName=name,
            Runtime=props["Runtime"],
            Role=props["Role"],
            Handler=props["Handler"],
            Code={"ZipFile": _placeholder_zip()},
            Timeout=props.get("Timeout", 3),
            MemorySize=props.get("MemorySize", 128),
            Environment=props.get("Environment", {"Variables": {}}),
            Architectures=props.get("Architectures", ["x86_64"]),
        )
        functions[name] = (ROOT / props["Code"]["S3Key"], props["Handler"])

    (_, machine), = _of_type(resources, "AWS::StepFunctions::StateMachine")
    props = resolver.resolve(machine["Properties"])
    definition = substitute_definition(
        (ROOT / props["DefinitionS3Location"]["Key"]).read_text(), props.get("DefinitionSubstitutions", {})
    )
    sfn = client("stepfunctions")
    arn = sfn.create_state_machine(
        name=props["StateMachineName"], definition=definition, roleArn=props["RoleArn"]
    )["stateMachineArn"]

    (_, schedule), = _of_type(resources, "AWS::Events::Rule")
    (target,) = resolver.resolve(schedule["Properties"])["Targets"]
    bucket = resolver.physical.get("RunBucket", {}).get("Ref") or resolver.parameters["RunBucketName"]
    return Deployment(resolver.parameters, arn, target["InputTransformer"], functions, bucket)


def substitute_definition(asl: str, substitutions: dict[str, str]) -> str:
    """Step Functions' DefinitionSubstitutions: every ${Name} must have a value, as CloudFormation requires."""

    def value(match):
        name = match.group(1)
        if name not in substitutions:
            raise TemplateError(f"the ASL uses ${{{name}}} but DefinitionSubstitutions has no {name}")
        return json.dumps(str(substitutions[name]))[1:-1]  # stays a valid JSON string

    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", value, asl)


def scheduled_event(time: str) -> dict:
    """The event EventBridge sends for a schedule rule firing at ``time``."""
    return {
        "version": "0", "id": "emulated", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT_ID, "time": time, "region": REGION, "resources": [], "detail": {},
    }


def transform_input(transformer: dict, event: dict) -> str:
    """EventBridge's InputTransformer for top-level paths: each <name> in the template becomes the value at its
    path, as JSON (a string inside quotes goes in without its own quotes)."""
    text = transformer["InputTemplate"]
    for name, path in transformer.get("InputPathsMap", {}).items():
        value = event[path.removeprefix("$.")]
        text = text.replace(f'"<{name}>"', json.dumps(value)).replace(f"<{name}>", json.dumps(value))
    return text


def _of_type(resources: dict, kind: str):
    return [(logical, r) for logical, r in resources.items() if r["Type"] == kind]


def _physical_ids(logical: str, resource: dict, resolver: Resolver) -> dict[str, str]:
    props = resource.get("Properties", {})
    kind = resource["Type"]
    name = f"{STACK_NAME}-{logical}"
    if kind == "AWS::IAM::Role":
        role = resolver.resolve(props["RoleName"]) if "RoleName" in props else name
        return {"Ref": role, "Arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"}
    if kind == "AWS::Lambda::Function":
        return {"Ref": name, "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"}
    if kind == "AWS::StepFunctions::StateMachine":
        machine = resolver.resolve(props.get("StateMachineName", name))
        arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{machine}"
        return {"Ref": arn, "Arn": arn, "Name": machine}
    if kind == "AWS::Logs::LogGroup":
        return {"Ref": name, "Arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"}
    if kind == "AWS::KMS::Key":
        arn = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"  # the AWS docs example id
        return {"Ref": arn.rsplit("/", 1)[1], "Arn": arn, "KeyId": arn.rsplit("/", 1)[1]}
    if kind == "AWS::S3::Bucket":
        bucket = resolver.resolve(props["BucketName"])
        return {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}
    if kind == "AWS::SNS::Topic":
        arn = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}"
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}
    return {"Ref": name, "Arn": f"arn:aws:emulated:{REGION}:{ACCOUNT_ID}:{name}"}


def _placeholder_zip() -> bytes:
    """moto needs a code package; the emulator runs the handler from its directory instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "The emulator imports the handler from its code directory.")
    return buffer.getvalue()
