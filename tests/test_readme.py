"""The README's parameters table is the template's parameters: every one, with its default."""

import re

from samtranslator.yaml_helper import yaml_parse

from emulator import stack


def readme_parameters() -> dict[str, str]:
    text = (stack.ROOT / "README.md").read_text()
    table = text[text.index("### Parameters") :].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    found = {}
    for row in rows:
        name, default = re.match(r"\| `(\w+)` \| (`[^`]*`|empty) \|", row).groups()
        found[name] = "" if default == "empty" else default.strip("`")
    return found


def test_the_parameters_table_lists_every_parameter_with_its_default():
    template = yaml_parse((stack.ROOT / "template.yaml").read_text())["Parameters"]
    assert readme_parameters() == {name: str(spec.get("Default", "")) for name, spec in template.items()}
