"""CODEOWNERS and runbooks: generated from the declarations, stale when they change, hand-written parts kept."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployments import codeowners, runbooks
from deployments.generate import generated_files, main, stale_files
from shipshape.alerts import ALERT_KINDS, FAST_BURN
from shipshape.catalog import DeclaredPipeline, load_all, load_pipeline
from shipshape.declaration import Owner
from shipshape.errors import ConfigurationError, DeclarationError
from shipshape.settings import PACKAGE_ROOT
from tests.support.markdown import github_anchors
from tests.support.project import EXAMPLE_FILES, copy_example

RUNBOOK = "runbooks/shop_orders.md"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example pipeline with its generated files written, as the project folder."""
    copy_example(tmp_path)
    monkeypatch.setenv("SHIPSHAPE_PROJECT_DIR", str(tmp_path))
    assert main([]) == 0
    return tmp_path


def edit_declaration(project: Path, change) -> None:
    file = project / "pipelines" / "shop_orders.yaml"
    data = yaml.safe_load(file.read_text())
    change(data)
    file.write_text(yaml.safe_dump(data, sort_keys=False))


def test_codeowners_names_every_file_of_a_pipeline(project: Path) -> None:
    lines = (project / ".github" / "CODEOWNERS").read_text().splitlines()
    owners = "@example-org/commerce ana.lima@example.com"
    assert f"*  {codeowners.PLATFORM_OWNER}" in lines
    for path in [*EXAMPLE_FILES, "pipelines/shop_orders/", RUNBOOK]:
        assert f"/{path}  {owners}" in lines
    assert lines.index(f"*  {codeowners.PLATFORM_OWNER}") < lines.index(f"/{RUNBOOK}  {owners}"), "last match wins"


def test_a_changed_owner_makes_codeowners_stale(project: Path) -> None:
    assert stale_files(project) == []
    edit_declaration(project, lambda data: data["owner"].update(github="@example-org/payments"))
    assert project / ".github" / "CODEOWNERS" in stale_files(project)
    env = {**os.environ, "SHIPSHAPE_PROJECT_DIR": str(project)}
    check = subprocess.run(
        [sys.executable, "-m", "deployments.generate", "--check"], env=env, capture_output=True, text=True
    )
    assert check.returncode == 1
    assert ".github/CODEOWNERS is stale: run `make generate` and commit it" in check.stderr


def test_a_changed_declaration_makes_the_runbook_stale(project: Path) -> None:
    edit_declaration(project, lambda data: data["freshness"].update(sla="12h"))
    stale = stale_files(project)
    assert project / RUNBOOK in stale and project / ".github" / "CODEOWNERS" not in stale


def test_hand_written_sections_survive_regeneration_byte_for_byte(project: Path) -> None:
    runbook = project / RUNBOOK
    before = "Read me first \t\n\n"
    after = runbook.read_text().split(runbooks.END)[1] + "\n## Known quirks\n\n  - trailing spaces stay   \n\t\n"
    runbook.write_text(before + runbooks.render(load_all(project)[0]).split(runbooks.STARTER)[0] + after)
    edit_declaration(project, lambda data: data.update(description="Orders, rewritten."))
    assert main([]) == 0
    text = runbook.read_text()
    assert text.startswith(before + runbooks.BEGIN) and text.endswith(runbooks.END + after)
    assert "Orders, rewritten." in text
    assert stale_files(project) == []


def test_a_runbook_without_its_markers_is_an_error_not_a_silent_overwrite(project: Path) -> None:
    runbook = project / RUNBOOK
    runbook.write_text(runbook.read_text().replace(runbooks.END, ""))
    with pytest.raises(ConfigurationError, match=r"runbooks/shop_orders\.md: expected one line"):
        generated_files(project)


def test_every_alert_has_its_anchor_in_the_committed_runbook() -> None:
    text = (PACKAGE_ROOT / RUNBOOK).read_text()
    anchors = github_anchors(text)
    for alert in ALERT_KINDS.values():
        assert anchors.count(alert.anchor) == 1, alert.anchor
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert set(links) <= set(anchors), "every in-page link leads to a heading"


def test_the_committed_runbook_keeps_a_hand_written_section() -> None:
    hand_written = (PACKAGE_ROOT / RUNBOOK).read_text().split(runbooks.END)[1]
    assert "## Notes from the owners" in hand_written


def test_runbook_url_points_at_the_alert_section() -> None:
    assert runbooks.runbook_url("shop_orders", FAST_BURN) == (
        "https://github.com/example-org/shipshape/blob/main/runbooks/shop_orders.md#fast-burn"
    )
    assert runbooks.runbook_url("shop_orders").endswith("/runbooks/shop_orders.md")
    with pytest.raises(ValueError, match="unknown alert 'fire'; expected one of run-failed, audit-blocked"):
        runbooks.runbook_url("shop_orders", "fire")


def test_a_file_shared_by_two_pipelines_is_owned_by_both() -> None:
    shop = load_all(PACKAGE_ROOT)[0]
    owner = Owner(team="finance", github="@example-org/finance", slack_channel="#finance")
    other = DeclaredPipeline(shop.spec.model_copy(update={"name": "refunds", "owner": owner}), shop.file, PACKAGE_ROOT)
    text = codeowners.render([shop, other])
    assert "/checks/fct_orders.yaml  @example-org/commerce ana.lima@example.com @example-org/finance" in text
    assert "/pipelines/refunds.yaml  @example-org/finance" in text


def test_an_owner_without_github_or_person_is_a_declaration_error(project: Path) -> None:
    edit_declaration(project, lambda data: [data["owner"].pop(key) for key in ("github", "person")])
    with pytest.raises(DeclarationError) as caught:
        load_pipeline(project / "pipelines" / "shop_orders.yaml", project)
    message = str(caught.value)
    assert message.startswith("pipelines/shop_orders.yaml: field 'owner': ")
    assert "give 'owner.github' (a GitHub user or team, e.g. '@example-org/commerce') or 'owner.person'" in message


def test_person_must_be_an_email_address(project: Path) -> None:
    edit_declaration(project, lambda data: data["owner"].update(person="Ana Lima"))
    with pytest.raises(DeclarationError, match=r"field 'owner\.person': got 'Ana Lima'"):
        load_pipeline(project / "pipelines" / "shop_orders.yaml", project)


def _declaring(transform: list[str], contract: str) -> DeclaredPipeline:
    """The example pipeline declaring other paths, built past the catalog (which refuses these) to test the
    generator's own rule.
    """
    shop = load_all(PACKAGE_ROOT)[0]
    return DeclaredPipeline(
        shop.spec.model_copy(update={"transform": transform, "contract": contract}), shop.file, PACKAGE_ROOT
    )


def test_a_declared_path_outside_the_pipelines_own_places_gets_no_codeowners_line() -> None:
    claimed = ["infra/warehouse.py", ".github/workflows/delivery.yml", "pipelines/other/fct.sql",
               "pipelines/shop_orders/../../shipshape/names.py", "/shipshape/", "pipelines/shop_orders/*/../x.sql"]
    text = codeowners.render([_declaring(claimed, "checks/*")])

    pipeline_lines = text.split("# shop_orders")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[0] for line in pipeline_lines] == [
        "/pipelines/shop_orders.yaml", "/pipelines/shop_orders/", "/runbooks/shop_orders.md"
    ]


def test_the_platform_folders_close_codeowners_so_no_earlier_line_can_claim_them() -> None:
    lines = codeowners.render([_declaring(["pipelines/shop_orders/fct_orders.sql"], "checks/fct_orders.yaml")])
    closing = lines.rstrip("\n").splitlines()[-len(codeowners.PLATFORM_PATHS):]

    assert closing == [f"/{path}  {codeowners.PLATFORM_OWNER}" for path in codeowners.PLATFORM_PATHS]
    assert {"infra/", ".github/", "shipshape/", "deployments/"} <= set(codeowners.PLATFORM_PATHS)
