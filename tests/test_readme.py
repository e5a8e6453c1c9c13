"""The parameters tables are the template's parameters, with their defaults.

docs/operating.md lists every parameter; docs/serverless-application-repository.md (what the Serverless
Application Repository shows) lists the main ones. Each row's default must be the template's.
"""

import re

from samtranslator.yaml_helper import yaml_parse

from emulator import stack

FULL_TABLE = "docs/operating.md"
SUMMARY_TABLE = "docs/serverless-application-repository.md"


def documented_parameters(page: str) -> dict[str, str]:
    """The rows of the table under the page's "## Parameters" heading: {name: default}."""
    text = (stack.ROOT / page).read_text()
    section = text[text.index("\n## Parameters\n") :]
    table = next(block for block in section.split("\n\n") if block.startswith("| Parameter | Default |"))
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    found = {}
    for row in rows:
        name, default = re.match(r"\| `(\w+)` \| (`[^`]*`|empty) \|", row).groups()
        assert name not in found, f"{page}: {name} is listed twice"
        found[name] = "" if default == "empty" else default.strip("`")
    return found


def template_defaults() -> dict[str, str]:
    template = yaml_parse((stack.ROOT / "template.yaml").read_text())["Parameters"]
    return {name: str(spec.get("Default", "")) for name, spec in template.items()}


def test_the_parameters_table_lists_every_parameter_with_its_default():
    assert documented_parameters(FULL_TABLE) == template_defaults()


def test_the_summary_for_the_serverless_application_repository_gives_the_template_defaults():
    summary, defaults = documented_parameters(SUMMARY_TABLE), template_defaults()

    assert summary and {name: defaults.get(name) for name in summary} == summary
    metadata = yaml_parse((stack.ROOT / "template.yaml").read_text())["Metadata"]["AWS::ServerlessRepo::Application"]
    home = metadata["HomePageUrl"]  # the SAR page links the repository's pages in full
    assert f"[operating]({home}/blob/main/{FULL_TABLE}#parameters)" in (stack.ROOT / SUMMARY_TABLE).read_text()
