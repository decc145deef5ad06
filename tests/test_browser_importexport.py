"""Browser: export a machine from the admin, import the file with preview and confirm."""
import json
import os

import pytest
from playwright.sync_api import expect

from flowr.demo.setup import demo_documents
from flowr.models import HistoryEntry, Instance, Machine

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _shot(page, artifacts_dir, name):
    path = os.path.join(artifacts_dir, name)
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 10_000
    return path


def _delete(machine):
    HistoryEntry.objects.filter(instance__machine=machine).delete()
    Instance.objects.filter(machine=machine).delete()
    machine.delete()


def test_export_then_import_with_preview_and_confirm(admin_page, demo_machines, artifacts_dir,
                                                     tmp_path):
    page = admin_page
    original = demo_machines["orders"]
    page.goto("/admin/flowr/machine/")
    for label in ("Import", "Export"):
        expect(page.locator(f"a:text-is('{label}')").first).to_be_visible()
    page.locator(f"input[name=_selected_action][value='{original.pk}']").check()
    page.select_option("select[name=action]", "export_machines_json")
    _shot(page, artifacts_dir, "importexport_1_list_action.png")
    with page.expect_download() as download_info:
        page.locator("button[name=index], input[name=index]").first.click()
    download = download_info.value
    assert download.suggested_filename.startswith("machines-")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    exported = json.loads(path.read_text(encoding="utf-8"))
    assert [d["name"] for d in exported] == ["Order approval"]

    _delete(original)
    page.goto("/admin/flowr/machine/import/")
    expect(page.get_by_text("Choose a JSON file exported by Flowr")).to_be_visible()
    page.set_input_files("input[name=import_file]", str(path))
    page.locator("input[type=submit]").first.click()
    page.wait_for_selector("input[name=confirm]")
    preview = page.locator("table.import-preview")
    assert "New" in preview.inner_text() and "Order approval" in preview.inner_text()
    assert "6 states, 6 transitions" in preview.inner_text()
    _shot(page, artifacts_dir, "importexport_2_preview.png")
    assert not Machine.objects.filter(name="Order approval").exists()  # preview wrote nothing

    page.locator("input[name=confirm]").click()
    page.wait_for_url("**/admin/flowr/machine/")
    expect(page.get_by_text("Import finished: 1 new: Order approval.")).to_be_visible()
    expect(page.locator("#result_list").get_by_role("link", name="Order approval")).to_be_visible()
    _shot(page, artifacts_dir, "importexport_3_imported.png")
    page.locator("#result_list").get_by_role("link", name="Order approval").click()
    page.wait_for_url("**/machine/*/change/")
    _shot(page, artifacts_dir, "importexport_3b_imported_machine.png")
    for name in ("Draft", "Submitted", "Approved", "Needs rework", "Shipped"):
        assert page.get_by_text(name, exact=True).filter(visible=True).count() > 0, name
    machine = Machine.objects.get(name="Order approval")
    assert machine.uuid == original.uuid
    assert sorted(machine.states.values_list("key", flat=True)) == sorted(
        s["key"] for s in exported[0]["graph"]["states"])


def test_import_of_a_bad_file_shows_row_errors(admin_page, demo_machines, artifacts_dir,
                                               tmp_path):
    page = admin_page
    docs = demo_documents()
    docs[1]["graph"]["states"][2]["settings"] = {"max_amount": -5}
    docs[2]["graph"]["transitions"].append(["open", "ghost"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(docs), encoding="utf-8")
    page.goto("/admin/flowr/machine/import/")
    page.set_input_files("input[name=import_file]", str(path))
    page.locator("input[type=submit]").first.click()
    page.wait_for_selector("table.import-preview")
    text = page.locator("table.import-preview").inner_text()
    assert "Machine 'Order approval': State 'Approved': Settings for rule orders.Approved" in text
    assert "Machine 'Support ticket': A transition refers to unknown state 'ghost'." in text
    assert page.locator("input[name=confirm]").count() == 0
    assert "Traceback" not in page.content()
    _shot(page, artifacts_dir, "importexport_4_row_errors.png")


def test_unreadable_file_shows_a_form_error(admin_page, artifacts_dir, tmp_path):
    page = admin_page
    path = tmp_path / "broken.json"
    path.write_text('[{"name": "half a machine",', encoding="utf-8")
    page.goto("/admin/flowr/machine/import/")
    page.set_input_files("input[name=import_file]", str(path))
    page.locator("input[type=submit]").first.click()
    error = page.locator(".errorlist")
    error.first.wait_for()
    assert "The file is not valid JSON (line 1, column 28: Expecting property name" in error.first.inner_text()
    assert "Traceback" not in page.content()
    _shot(page, artifacts_dir, "importexport_5_unreadable_file.png")


def test_list_export_page(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    page.goto("/admin/flowr/machine/?q=Order")
    page.locator("a:text-is('Export')").first.click()
    page.wait_for_url("**/machine/export/**")
    expect(page.get_by_text("Export machines as Flowr JSON")).to_be_visible()
    _shot(page, artifacts_dir, "importexport_6_export_page.png")
    with page.expect_download() as download_info:
        page.locator("input[type=submit][value=Export]").click()
    path = download_info.value.path()
    with open(path, encoding="utf-8") as handle:
        assert [d["name"] for d in json.load(handle)] == ["Order approval"]
