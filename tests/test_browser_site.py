"""Browser: log in through the real login form and look at the admin index."""
import os

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_and_admin_index_screenshot(admin_page, artifacts_dir):
    page = admin_page
    assert "Flowr" in page.title()
    assert page.locator("#grp-navigation, .grp-navigation, header#grp-header").count() > 0
    expect(page.get_by_text("Machines").first).to_be_visible()
    path = os.path.join(artifacts_dir, "admin_index.png")
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 10_000
