"""Reads an `aws <service> <command> --option value ...` line as the AWS CLI (v1) reads it, into the boto3 call it
makes: (service, boto3 method, parameters), from botocore's model of the service. For the commands the docs show,
not a CLI:
- an option is `--` and the API member's name in kebab-case; a boolean member is a flag: `--flag` or `--no-flag`;
- a list member takes the values that follow it up to the next option, any other member one value;
- a structure's value is JSON (`{...}`) or shorthand, `Key=Value,Key=Value`, where a list member's values go on
  after commas (`OrganizationalUnitIds=ou-1,ou-2,Accounts=1`); a list of structures takes one of those per value;
- `file://path` as an option's whole value is the file's text (inside shorthand it stays text, as in the CLI);
  `true`/`false` (any case) and integers are converted, and an enum's value must be one of it;
- the CLI's global options are taken and dropped (--query, --output, --region, --profile, --endpoint-url with
  a value; --no-cli-pager, --debug without);
- then botocore validates the parameters (a required one missing, a wrong type), as the CLI does before calling.
Anything else it cannot read (nested shorthand, a command or option the API lacks) raises ValueError.
"""

from __future__ import annotations

import json
from pathlib import Path

from botocore import xform_name
from botocore.exceptions import ParamValidationError
from botocore.session import Session
from botocore.validate import validate_parameters

GLOBAL_WITH_VALUE = {"--query", "--output", "--region", "--profile", "--endpoint-url", "--color", "--cli-read-timeout"}
GLOBAL_FLAGS = {"--no-cli-pager", "--debug", "--no-verify-ssl", "--no-paginate", "--no-sign-request"}


def aws_call(argv: list[str], files: Path) -> tuple[str, str, dict]:
    """(service, boto3 method, parameters) of ``argv``; ``file://`` paths are read below ``files``."""
    if argv[:1] != ["aws"] or len(argv) < 3:
        raise ValueError(f"not an aws <service> <command> line: {argv}")
    service, command, options = argv[1], argv[2], argv[3:]
    model = Session().get_service_model(service)
    operations = [o for o in model.operation_names if _kebab(o) == command]
    if not operations:
        raise ValueError(f"aws {service} has no command {command}")
    operation = model.operation_model(operations[0])
    members = operation.input_shape.members if operation.input_shape else {}
    by_option = {"--" + _kebab(name): (name, shape) for name, shape in members.items()}
    parameters, i = {}, 0
    while i < len(options):
        option = options[i]
        i += 1
        if option in GLOBAL_FLAGS:
            continue
        values = []
        while i < len(options) and not options[i].startswith("--"):
            values.append(options[i])
            i += 1
        if option in GLOBAL_WITH_VALUE:
            if len(values) != 1:
                raise ValueError(f"{option} takes one value")
            continue
        negated = option.startswith("--no-") and "--" + option[len("--no-"):] in by_option
        name, shape = by_option.get("--" + option[len("--no-"):] if negated else option, (None, None))
        if name is None:
            raise ValueError(f"aws {service} {command} has no option {option}")
        if shape.type_name == "boolean":
            if values:
                raise ValueError(f"{option} is a flag: Unknown options: {' '.join(values)}")
            parameters[name] = not negated
            continue
        if not values:
            raise ValueError(f"{option} takes a value")
        parameters[name] = _value(shape, values, files)
    try:
        if operation.input_shape is not None:
            validate_parameters(parameters, operation.input_shape)
    except ParamValidationError as error:
        raise ValueError(f"aws {service} {command}: {error}") from None
    return service, xform_name(operation.name), parameters


def _kebab(name: str) -> str:
    return xform_name(name, "-")


def _value(shape, values: list[str], files: Path):
    if shape.type_name == "list":
        if len(values) == 1 and values[0].startswith("["):
            return json.loads(values[0])
        return [_one(shape.member, v, files) for v in values]
    if len(values) != 1:
        raise ValueError(f"{shape.name} takes one value, got {values}")
    return _one(shape, values[0], files)


def _one(shape, text: str, files: Path):
    if text.startswith("file://"):
        text = (files / text[len("file://"):]).read_text()
    if shape.type_name in ("structure", "map"):
        return json.loads(text) if text.lstrip().startswith("{") else _shorthand(shape, text)
    return _scalar(shape, text)


def _shorthand(shape, text: str) -> dict:
    found, key = {}, None
    for piece in text.split(","):
        name, equals, value = piece.partition("=")
        if equals and (name in shape.members or shape.type_name == "map"):
            key = name
            member = shape.value if shape.type_name == "map" else shape.members[key]
            if value.startswith(("{", "[")):
                raise ValueError(f"nested shorthand ({piece}) is not read here")
            found[key] = [_scalar(member.member, value)] if member.type_name == "list" else _scalar(member, value)
        elif key is not None and not equals and isinstance(found[key], list):
            found[key].append(_scalar(shape.members[key].member, piece))  # a list's next value
        else:
            raise ValueError(f"{shape.name} has no member {name!r} (in {text!r})")
    return found


def _scalar(shape, text: str):
    if shape.type_name == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{shape.name} is true or false, not {text!r}")
        return text.lower() == "true"
    if shape.type_name in ("integer", "long"):
        return int(text)
    enum = getattr(shape, "enum", None)
    if enum and text not in enum:
        raise ValueError(f"{shape.name} is one of {', '.join(enum)}, not {text!r}")
    return text
