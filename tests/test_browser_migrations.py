"""Browser: publish with its preview, compare two versions, map the missing state, preview
every instance, confirm the migration, revert it; screenshots of every page."""
import os

import pytest
from playwright.sync_api import expect

from flowr import builder
from flowr.models import Instance, VersionMigration

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _shot(page, artifacts_dir, name):
    """Full page, the viewport as tall as the page (grappelli's fixed footer at the bottom)."""
    path = os.path.join(artifacts_dir, name)
    height = page.evaluate("document.body.scrollHeight")
    page.set_viewport_size({"width": 1366, "height": max(height, 900)})
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    assert os.path.getsize(path) > 10_000


def _click(locator):
    locator.evaluate("b => b.scrollIntoView({block: 'center'})")
    locator.click()


def _running(machine):
    """v1 instances: three at E, two at C, one at A."""
    started = []
    for path in (["C", "E"],) * 3 + (["C"],) * 2 + ([],):
        instance = machine.start()
        for name in path:
            instance.step(to=name)
        started.append(instance)
    return started


def test_publish_compare_map_preview_confirm_revert(admin_page, admin_user, example_machine,
                                                    artifacts_dir):
    page, machine = admin_page, example_machine
    instances = _running(machine)
    builder.prune_state(machine.states.get(name="E"))
    builder.update_state(machine.states.get(name="C"), name="Check",
                         options={"due_after": 2 * 86400})

    # Publish: the preview names the instances the new version strands.
    page.goto(f"/admin/flowr/machine/{machine.pk}/change/")
    _click(page.get_by_role("button", name="Publish"))
    page.wait_for_url("**/builder/publish/preview/**")
    expect(page.get_by_text("v2 removes 'E', where 3 running instances on v1 sit.")).to_be_visible()
    _shot(page, artifacts_dir, "migrations_publish_preview.png")
    _click(page.get_by_role("button", name="Publish version 2"))
    page.wait_for_url(f"**/admin/flowr/machine/{machine.pk}/change/")
    expect(page.locator(".grp-messagelist")).to_contain_text("5 running instances on v1")

    # Compare, from the version row.
    _click(page.get_by_role("link", name="Compare with v1"))
    page.wait_for_url("**/versions/compare/**")
    summary = page.locator("#flowr-comparison-summary")
    expect(summary.get_by_text("Renamed state 'C' to 'Check'.")).to_be_visible()
    expect(summary.get_by_text("Changed options of 'Check': Due after: — → 2 days.")
           ).to_be_visible()
    assert page.locator(".flowr-side-a g.fd-removed").count() == 1
    assert page.locator(".flowr-side-b g.fd-changed").count() == 1
    _shot(page, artifacts_dir, "migrations_compare.png")

    # Map: E is missing in v2; send its instances back to A.
    _click(page.get_by_role("link", name="Move the running instances of v1 to v2…"))
    page.wait_for_url("**/instance/move/**")
    row = page.locator("tr.flowr-mapping-row")
    expect(row).to_have_count(2)  # E (missing) and C (renamed "Check", pre-filled by key)
    e_row = row.filter(has_text="Not in v2")
    expect(e_row.locator("td").nth(1)).to_have_text("3")
    e_row.locator("select").select_option(label="A (flowr_example.A)")
    _shot(page, artifacts_dir, "migrations_map.png")
    _click(page.get_by_role("button", name="Preview"))

    # Preview: one row per instance, nothing written yet.
    expect(page.locator("#flowr-preview-summary")).to_contain_text("6 migrate")
    expect(page.locator("tr.flowr-outcome-map")).to_have_count(6)
    expect(page.get_by_text("Migrated → v2 “A”")).to_have_count(4)
    assert not VersionMigration.objects.exists()
    _shot(page, artifacts_dir, "migrations_preview.png")
    page.fill("#flowr-note", "E was retired")
    _click(page.get_by_role("button", name="Confirm: migrate 6"))

    # The result page.
    page.wait_for_url("**/versionmigration/*/change/")
    expect(page.locator(".grp-messagelist")).to_contain_text("6 migrated")
    expect(page.locator("#flowr-migration-status")).to_contain_text("6 of 6")
    _shot(page, artifacts_dir, "migrations_result.png")
    assert Instance.objects.filter(version__number=2).count() == 6

    # Revert: an instance stepped since is listed and left alone.
    stepped = Instance.objects.get(pk=instances[3].pk)
    stepped.step(to="D")
    _click(page.get_by_role("link", name="Revert this migration…"))
    page.wait_for_url("**/revert/")
    expect(page.get_by_text("changed since the migration and will be left alone")
           ).to_be_visible()
    _shot(page, artifacts_dir, "migrations_revert_preview.png")
    _click(page.get_by_role("button", name="Revert 5 instances"))
    page.wait_for_url("**/versionmigration/*/change/")
    expect(page.locator("#flowr-migration-revert")).to_contain_text("5 instances went back")
    _shot(page, artifacts_dir, "migrations_reverted.png")
    assert Instance.objects.filter(version__number=1).count() == 5
    assert Instance.objects.get(pk=stepped.pk).state_name == "D"
    page.goto("/admin/flowr/versionmigration/")
    expect(page.locator("#result_list")).to_contain_text("v1 → v2")
    _shot(page, artifacts_dir, "migrations_list.png")
