"""Browser: machine list tools, history, compare two revisions, revert; screenshots."""
import os

import pytest
from playwright.sync_api import expect
from reversion.models import Version

from flowr import builder
from flowr.models import Machine

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _edited_machine(user):
    """An orders machine built and then edited, one revision per builder call."""
    with builder.revision(user, "Created machine Orders"):
        machine = builder.create_machine("orders", "Orders")
    with builder.revision(user, "Added state Submitted under Draft"):
        submitted = builder.add_child(machine.root_state, "orders.Submitted")
    with builder.revision(user, "Added state Approved under Submitted"):
        builder.add_child(submitted, "orders.Approved", settings={"max_amount": 500})
    with builder.revision(user, "Added state Rejected under Submitted"):
        builder.add_child(submitted, "orders.Rejected")
    with builder.revision(user, "Removed state Rejected"):
        builder.remove_state(machine.states.get(name="Rejected"))
    with builder.revision(user, "Raised the approval limit of Approved to 900"):
        builder.update_state(machine.states.get(name="Approved"), settings={"max_amount": 900})
    return machine


def _shot(page, artifacts_dir, name):
    path = os.path.join(artifacts_dir, name)
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 10_000
    return path


def test_machine_list_shows_import_export_recover_and_add(admin_page, artifacts_dir):
    page = admin_page
    page.goto("/admin/flowr/machine/")
    tools = page.locator(".grp-object-tools")
    for label in ["Import", "Export", "Recover deleted machines", "Add machine"]:
        expect(tools.get_by_role("link", name=label)).to_be_visible()
    _shot(page, artifacts_dir, "versioning_machine_list.png")


def test_history_compare_and_revert(admin_page, admin_user, artifacts_dir):
    page = admin_page
    machine = _edited_machine(admin_user)
    versions = {v.revision.comment: v for v in Version.objects.get_for_object(machine)}
    older = versions["Added state Rejected under Submitted"]

    page.goto(f"/admin/flowr/machine/{machine.pk}/history/")
    expect(page.get_by_text("Raised the approval limit of Approved to 900")).to_be_visible()
    page.check(f"input[name=a][value='{older.pk}']")
    page.check("input[name=b][value='current']")
    _shot(page, artifacts_dir, "versioning_history.png")
    page.click("text=Compare selected revisions")

    page.wait_for_url("**/history/compare/**")
    diff = page.locator(".flowr-diff")
    expect(diff.get_by_text("Removed state 'Rejected' (orders.Rejected).")).to_be_visible()
    expect(diff.get_by_text("max_amount: 500 → 900")).to_be_visible()
    assert page.locator(".flowr-side-a svg").count() == 1
    assert page.locator(".flowr-side-b svg").count() == 1
    _shot(page, artifacts_dir, "versioning_compare.png")

    page.goto(f"/admin/flowr/machine/{machine.pk}/history/{older.pk}/")
    expect(page.locator(".flowr-diff").get_by_text("Removed state 'Rejected'")).to_be_visible()
    _shot(page, artifacts_dir, "versioning_revision_preview.png")
    page.click("input[value='Revert to this revision']")
    page.wait_for_url(f"**/admin/flowr/machine/{machine.pk}/change/")
    expect(page.get_by_text("was reverted to the revision of")).to_be_visible()
    _shot(page, artifacts_dir, "versioning_after_revert.png")

    machine = Machine.objects.get(pk=machine.pk)
    assert sorted(machine.states.values_list("name", flat=True)) == [
        "Approved", "Draft", "Rejected", "Submitted"]
    assert machine.states.get(name="Approved").settings == {"max_amount": 500}


def test_recover_preview(admin_page, admin_user, artifacts_dir):
    import reversion

    page = admin_page
    machine = _edited_machine(admin_user)
    with reversion.create_revision():
        reversion.add_to_revision(machine)
        machine.delete()
    page.goto("/admin/flowr/machine/recover/")
    page.click("table a")
    expect(page.get_by_text("Recovering brings it back")).to_be_visible()
    _shot(page, artifacts_dir, "versioning_recover_preview.png")
    page.click("input[value='Recover this machine']")
    page.wait_for_url("**/change/")
    expect(page.get_by_text("was recovered with 3 states")).to_be_visible()
    assert Machine.objects.get(name="Orders").states.count() == 3
