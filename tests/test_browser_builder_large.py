"""Browser: a 60-state machine built and edited only by clicking stays usable (readable
diagram, actions next to a selected box at once); long names never widen a page."""
import os
import statistics

import pytest
from playwright.sync_api import expect

from tests.browser_builder_helpers import (
    boxes, click, click_and_expect, no_horizontal_scroll, overlapping, panel, record_figure, row,
    screenshot, select, select_arrow,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SPOKES, LINKS = 6, 8  # hub + 6 spokes + 6 × 8 links + 5 more links = 60 states


def newest(machine):
    return machine.states.order_by("-pk").first()


def add_under(page, parent, label):
    click_and_expect(page, row(page, parent).get_by_role("button", name=label, exact=True),
                     f"under '{parent}'.")


def build_sixty(page, machine):
    for i in range(SPOKES):
        add_under(page, "Hub", f"Add Spoke{i}")
    for i in range(SPOKES):
        parent = f"Spoke{i}"
        for j in range(LINKS + (1 if i < 5 else 0)):
            add_under(page, parent, "Add Link" if i == j == 0 else "Add another Link")
            parent = newest(machine).name
    assert machine.states.count() == 60


def test_sixty_states_built_and_edited_by_clicking(admin_page, artifacts_dir):
    from flowr.models import Machine
    from tests.factories import register_hub_rules

    register_hub_rules("hub")
    page = admin_page
    page.goto("/admin/flowr/machine/add/")
    page.select_option("#id_rule_set", label="Hub")
    page.fill("#id_name", "Sixty")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    machine = Machine.objects.get(name="Sixty")
    build_sixty(page, machine)

    # Readable: every box at full size, none overlapping, the page no wider than the window.
    found = boxes(page)
    assert len(found) == 60 and not overlapping(found)
    assert all(w >= 96 and h >= 46 for _, _, w, h in found)
    no_horizontal_scroll(page)
    screenshot(page, os.path.join(artifacts_dir, "builder_sixty.png"))

    # Selecting a box shows its actions next to it: measured in the page.
    keys = list(machine.states.order_by("?").values_list("key", flat=True)[:9])
    times = []
    for key in keys:
        times.append(select(page, key))
        page.keyboard.press("Escape")
    median = statistics.median(times)
    record_figure(artifacts_dir, "builder_select_ms_60", round(median, 1))
    assert median < 1000  # a sanity bound only; the figure is reported, not asserted

    # Edit from the panel: rename the end of the first chain, connect it back to the hub.
    end = machine.states.get(name=machine.states.filter(name__startswith="Link")
                             .order_by("pk")[LINKS - 1].name)
    select(page, end.key)
    click(panel(page).get_by_role("link", name="Edit…"))
    panel(page).locator(".flowr-inline input[name=name]").fill("End of the first chain")
    click_and_expect(page, panel(page).get_by_role("button", name="Save state"),
                     "Saved state 'End of the first chain'.")
    select(page, end.key)
    screenshot(page, os.path.join(artifacts_dir, "builder_sixty_selected.png"))
    page.locator("#flowr-diagram").screenshot(
        path=os.path.join(artifacts_dir, "builder_sixty_selected_diagram.png"))
    click_and_expect(page, panel(page).get_by_role("button", name="Connect to Hub"),
                     "Connected 'End of the first chain' → 'Hub'.")
    # Remove that arrow again by selecting it, then remove a last link from its panel.
    select_arrow(page, end.key, machine.root_state.key)
    click_and_expect(page, panel(page).get_by_role("button", name="Remove → Hub"),
                     "Removed the transition 'End of the first chain' → 'Hub'.")
    last = newest(machine)
    select(page, last.key)
    click_and_expect(page, panel(page).get_by_role("button", name="Remove", exact=True),
                     f"Removed state '{last.name}'.")
    assert machine.states.count() == 59


def test_long_names_wrap_everywhere(admin_page, artifacts_dir):
    from flowr import builder

    long_word = "Averyveryverylongstatenamewithoutanyspaces" * 3
    machine = builder.create_machine("flowr_example", "Machine" + "x" * 150)
    c = builder.add_child(machine.root_state, "flowr_example.C", name=long_word)
    machine.publish()
    page = admin_page
    base = f"/admin/flowr/machine/{machine.pk}/"
    for url in [base + "change/", f"{base}builder/state/{c.pk}/", base + "history/",
                base + "delete/", base + "versions/1/"]:
        page.goto(url)
        expect(page.locator("#grp-content")).to_be_visible()
        no_horizontal_scroll(page)
    page.goto(base + "change/")
    select(page, c.key)
    no_horizontal_scroll(page)
    screenshot(page, os.path.join(artifacts_dir, "builder_long_names.png"))
