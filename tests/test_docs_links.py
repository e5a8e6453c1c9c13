"""Every link in README.md and docs/*.md leads somewhere, and every path, test and setting a page cites exists.

- Every relative link in README.md and docs/*.md leads to a file, and every anchor to a heading; every page in
  docs/ is linked from the README, and no page points outside the repository.
- The layout, the backticked files, the tests the threat model cites, the install's capabilities and the SAR
  readme are the ones the repository has.

Pure text checks, without the demo run of test_docs.py (whose page helpers they share).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from emulator import diagram
from test_docs import DOCS, PAGES, README, ROOT, prose, text

TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
SAR = TEMPLATE["Metadata"]["AWS::ServerlessRepo::Application"]
# The SAR console shows its readme away from the repository: its links name the repository's pages in full.
REPOSITORY_PAGES = SAR["HomePageUrl"] + "/blob/main/"

# --- links ----------------------------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), Counter()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(page), re.M):
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def without_generated_diagram(words: str) -> str:
    begin, end = words.find(diagram.BEGIN), words.find(diagram.END)
    return words if begin < 0 else words[:begin] + words[end:]


def broken_links(page: Path, words: str) -> list[str]:
    broken = []
    for target in LINK.findall(re.sub(r"`[^`\n]*`", "", words)):
        in_full = target.startswith(REPOSITORY_PAGES)  # a page of this repository, named in full
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) and not in_full:  # https:, mailto: ...
            continue
        path, _, anchor = target.removeprefix(REPOSITORY_PAGES).partition("#")
        resolved = (ROOT / path if in_full else page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target}: no heading with that anchor")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_every_anchor_to_a_heading(page):
    assert broken_links(page, without_generated_diagram(prose(page))) == [], page.name


def test_the_generated_diagram_links_from_its_page():
    page = ROOT / "docs" / "how-it-decides.md"
    block = diagram.extract_block(text(page))

    assert block is not None and broken_links(page, block) == []


def test_the_link_check_sees_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "a.md"
    page.write_text("# A page\n\n## With `code`: and more\n\n```sh\n# not a heading\n```\n")

    assert broken_links(page, "[ok](a.md#with-code-and-more) [ok](#a-page) [web](https://example.com)") == []
    assert broken_links(page, "[x](b.md)") == ["b.md: no such file"]
    assert broken_links(page, "[x](#not-a-heading)") == ["#not-a-heading: no heading with that anchor"]
    assert broken_links(page, "[x](../README.md)") == ["../README.md: no such file"]
    assert broken_links(page, f"[x]({REPOSITORY_PAGES}docs/nothing.md)") == [f"{REPOSITORY_PAGES}docs/nothing.md: no such file"]


def test_every_page_in_docs_is_linked_from_the_readme():
    readme = text(README)
    unlinked = [p.name for p in DOCS if f"](docs/{p.name})" not in readme]

    assert unlinked == [], "add each page to the README's Documentation table"


def test_the_layout_names_only_paths_that_exist():
    developing = text(ROOT / "docs" / "developing.md")
    layout = developing[developing.index("## Layout") :].split("```")[1]
    paths = [line.split()[0] for line in layout.splitlines() if line and not line.startswith(" ")]

    assert len(paths) > 10 and [p for p in paths if not (ROOT / p).exists()] == []


def test_the_capabilities_an_install_acknowledges_are_the_ones_the_template_needs():
    from test_sar_metadata import SAR_INSTALL_CAPABILITIES  # checked there against the template's resources

    deploying = text(ROOT / "docs" / "deploying.md")
    (command,) = re.findall(r"create-cloud-formation-change-set.*?--capabilities ((?:CAPABILITY_\w+ ?)+)", deploying, re.S)
    assert set(command.split()) == SAR_INSTALL_CAPABILITIES
    for page in (ROOT / "docs" / "deploying.md", ROOT / "docs" / "serverless-application-repository.md"):
        (said,) = re.findall(r"the installer acknowledges\s+`(CAPABILITY_\w+)` and `(CAPABILITY_\w+)`", text(page))
        assert set(said) == SAR_INSTALL_CAPABILITIES, page.name


def test_the_serverless_application_repository_page_is_the_readme_sar_shows():
    page = ROOT / SAR["ReadmeUrl"]

    assert page == ROOT / "docs" / "serverless-application-repository.md"
    assert SAR["HomePageUrl"] in text(page)
    links = LINK.findall(text(page))
    relative = [t for t in links if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]
    assert links and relative == []  # the SAR console would resolve them against its own address
    assert broken_links(page, text(page)) == []  # each full link names a file and heading of the repository


# --- nothing outside the repository ---------------------------------------------------------------------------


def test_no_document_points_outside_the_repository():
    for page in [*PAGES, ROOT / "CHANGELOG.md"]:
        for target in LINK.findall(text(page)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                resolved = (page.parent / target.partition("#")[0]).resolve()
                assert resolved == ROOT or ROOT in resolved.parents, f"{page.name} links outside the repository: {target}"
        assert not re.search(r"\.\./shared/|\bnotes/", text(page)), f"{page.name} points at notes outside the repository"
        assert not re.search(r"\b(?:issue|pull request|PR)s? #?\d+\b", text(page)), f"{page.name} names an issue tracker's number"


def test_every_test_the_threat_model_cites_exists():
    """The threat model names the test that proves each control: a renamed or deleted test must not leave a
    control citing a proof that no longer runs."""
    modules = {path.stem for path in (ROOT / "tests").glob("test_*.py")}
    cited = set(re.findall(r"\b(test_\w+)\b", text(ROOT / "docs" / "threat-model.md"))) - modules
    defined = {name for path in (ROOT / "tests").glob("test_*.py") for name in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    assert cited and cited <= defined, sorted(cited - defined)


def test_every_file_the_docs_name_in_backticks_exists():
    """A page that names `tests/test_x.py` or `emulator/y.py` points a reader at it: renamed or split, the page
    must follow (a glob such as `tests/test_safety_*.py` must still match)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {
        (page.name, path)
        for page in pages
        for path in re.findall(r"`((?:tests|emulator|functions|bench|tools|member|fixtures|statemachine)/[\w./*-]+)`", text(page))
    }
    missing = sorted((page, path) for page, path in named if not list(ROOT.glob(path)))
    assert named and missing == []
