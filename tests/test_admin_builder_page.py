"""The machine page as a whole: its cost, counts, details section, history and versions."""
import os
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from reversion.models import Revision, Version

from flowr import builder, engine
from flowr.models import Instance
from tests.factories import hub_machine

pytestmark = pytest.mark.django_db


def change_url(machine):
    return reverse("admin:flowr_machine_change", args=[machine.pk])


def page(client, machine, warm=False):
    if warm:  # the diagram's layout is computed and stored in the shared cache once
        client.get(change_url(machine))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(change_url(machine))
    assert response.status_code == 200
    return response.content.decode(), len(queries)


# -- cost ------------------------------------------------------------------------------

def test_queries_stay_constant_and_html_linear_in_the_states(staff_client):
    small, big = hub_machine(10, name="Small"), hub_machine(200, name="Big")
    for machine in (small, big):
        machine.publish()
        engine.start(machine)
    small_html, small_queries = page(staff_client, small, warm=True)
    big_html, big_queries = page(staff_client, big, warm=True)
    assert small_queries == big_queries <= 10
    assert len(big_html.encode()) / 200 <= 3 * 1024
    # No per-state forms: one action form, no CSRF token per row, no <select> of states.
    assert big_html.count('name="csrfmiddlewaretoken"') == small_html.count(
        'name="csrfmiddlewaretoken"')
    assert "<select" not in big_html.split('id="flowr-states"')[1]


def test_refusals_name_a_few_states_and_count_the_rest(staff_client):
    machine = hub_machine(200, name="Hub")
    spoke = machine.states.get(key="s3")
    html, _ = page(staff_client, machine)
    row = re.search(rf'<tr class="flowr-state" id="flowr-state-{spoke.pk}".*?</tr>', html).group()
    assert ("Remove: it would leave &#x27;Link 3.0&#x27;, &#x27;Link 3.1&#x27;, &#x27;Link "
            "3.2&#x27; and 6 more states unreachable from the root; Prune… removes them "
            "too.") in row
    assert len(row) < 2500


def test_transition_needed_by_a_timeout_cannot_be_removed(staff_client, demo_machines):
    machine = demo_machines["support"]
    resolved, open_ = machine.states.get(name="Resolved"), machine.states.get(name="Open")
    builder.update_state(resolved, options={"due_after": 3600, "timeout_to": open_.key})
    html, _ = page(staff_client, machine)
    assert re.search(r'title="&#x27;Resolved&#x27; steps to &#x27;Open&#x27; when due; change '
                     r'the timing of &#x27;Resolved&#x27; first.">→ Open <button[^>]+disabled',
                     html)


# -- counts ----------------------------------------------------------------------------

def test_diagram_counts_active_instances_and_links_to_exactly_them(staff_client,
                                                                   demo_machines):
    machine = demo_machines["orders"]  # the demo starts three instances at Draft
    draft = machine.states.get(name="Draft")
    finished = Instance.objects.filter(machine=machine).first()
    Instance.objects.filter(pk=finished.pk).update(status=Instance.FINISHED)
    html, _ = page(staff_client, machine)
    url = (f"/admin/flowr/instance/?machine__id__exact={machine.pk}&amp;state={draft.key}"
           f"&amp;status=active")
    assert (f'<a class="fd-count" href="{url}" aria-label="2 active instances in Draft">'
            in html)
    assert f'<a class="flowr-count-link" href="{url}">2 active instances</a>' in html
    assert 'class="fd-node fd-load-4" data-key="draft"' in html
    listed = staff_client.get(url.replace("&amp;", "&"))
    assert listed.context["cl"].result_count == 2


def test_version_page_counts_its_own_instances(staff_client, demo_machines):
    machine = demo_machines["orders"]
    builder.update_state(machine.states.get(name="Shipped"), name="Sent")
    v2 = engine.publish(machine)
    engine.start(machine)
    response = staff_client.get(reverse("admin:flowr_machine_version", args=[machine.pk, 2]))
    html = response.content.decode()
    assert "1 active instance" in html and ">Sent</text>" in html
    assert f"&amp;status=active&amp;version={v2.pk}" in html
    assert staff_client.get(reverse("admin:flowr_machine_version",
                                    args=[machine.pk, 9])).status_code == 404
    machine_page, _ = page(staff_client, machine)
    assert f'href="/admin/flowr/machine/{machine.pk}/versions/2/">v2</a>' in machine_page


def test_counts_cost_one_query(staff_client):
    machine = hub_machine(20, name="Counted")
    machine.publish()
    _, before = page(staff_client, machine, warm=True)
    for _ in range(5):
        engine.start(machine)
    html, after = page(staff_client, machine)
    assert after == before and "5 active instances in Hub" in html


# -- the machine's own fields ------------------------------------------------------------

def test_machine_details_are_a_compact_section_with_their_own_save(staff_client,
                                                                   example_machine):
    html, _ = page(staff_client, example_machine)
    assert 'id="flowr-details"' in html and "grp-closed" in html
    assert 'value="Save details"' in html and "grp-fixed-footer" not in html
    response = staff_client.post(change_url(example_machine), {
        "name": "Renamed example", "description": "New words.", "_continue": "1"}, follow=True)
    example_machine.refresh_from_db()
    assert (example_machine.name, example_machine.description) == ("Renamed example",
                                                                   "New words.")
    assert response.redirect_chain[-1][0] == change_url(example_machine)


def test_delete_confirmation_names_transitions_by_their_states(staff_client):
    machine = builder.create_machine("flowr_example", "Doomed")
    builder.add_child(machine.root_state, "flowr_example.C")
    html = staff_client.get(reverse("admin:flowr_machine_delete",
                                    args=[machine.pk])).content.decode()
    assert "Transition: A → C" in html and "transition " not in html.lower().replace(
        "transition: ", "")


# -- history -----------------------------------------------------------------------------

def test_builder_revisions_name_transitions_and_publishing_is_in_the_history(
        staff_client, admin_user):
    machine = builder.create_machine("flowr_example", "Told")
    staff_client.post(reverse("admin:flowr_machine_state_add",
                              args=[machine.pk, machine.root_state.pk]),
                      {"rule": "flowr_example.C"})
    reprs = set(Version.objects.filter(revision=Revision.objects.get())
                .values_list("object_repr", flat=True))
    assert "A → C" in reprs
    staff_client.post(reverse("admin:flowr_machine_publish", args=[machine.pk]))
    published = Revision.objects.order_by("-pk").first()
    assert (published.comment, published.user) == ("Published version 1", admin_user)
    history = staff_client.get(reverse("admin:flowr_machine_history", args=[machine.pk]))
    html = history.content.decode()
    assert "Published version 1" in html
    assert re.search(r">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</a>", html)  # to the second
    staff_client.post(reverse("admin:flowr_machine_publish", args=[machine.pk]))
    assert Revision.objects.count() == 2  # nothing new published, nothing recorded


def test_compare_tells_states_of_one_name_apart_by_key(staff_client, example_machine):
    c = example_machine.states.get(name="C")
    old_key = c.key
    with builder.revision(comment="before"):
        builder.update_state(c, name="C")
    builder.prune_state(c)
    with builder.revision(comment="after"):
        new_c = builder.add_child(example_machine.root_state, "flowr_example.C")
    revisions = list(Revision.objects.order_by("pk"))
    versions = [Version.objects.get_for_object(example_machine).get(revision=r).pk
                for r in revisions]
    html = staff_client.get(reverse("admin:flowr_machine_compare", args=[example_machine.pk])
                            + f"?a={versions[0]}&b={versions[1]}").content.decode()
    assert f"Added state &#x27;C&#x27; (flowr_example.C, key {new_c.key})." in html
    assert f"Removed state &#x27;C&#x27; (flowr_example.C, key {old_key})." in html


def test_builder_actions_are_in_the_admin_log(staff_client, admin_user):
    from django.contrib.admin.models import CHANGE, LogEntry

    machine = builder.create_machine("flowr_example", "Logged")
    staff_client.post(reverse("admin:flowr_machine_state_add",
                              args=[machine.pk, machine.root_state.pk]),
                      {"rule": "flowr_example.C"})
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.user, entry.object_repr) == (CHANGE, admin_user, "Logged")
    assert entry.get_change_message() == "Added state 'C' under 'A'."


def test_counts_leave_out_idle_instances_like_the_list(staff_client, demo_machines, settings):
    from datetime import timedelta

    from django.utils import timezone

    machine = demo_machines["orders"]
    idle = Instance.objects.filter(machine=machine).first()
    Instance.objects.filter(pk=idle.pk).update(last_activity=timezone.now() - timedelta(days=9))
    settings.FLOWS_TASK_IDLE_TIMEOUT = 3600
    html, _ = page(staff_client, machine)
    assert 'aria-label="2 active instances in Draft"' in html
    draft = machine.states.get(name="Draft")
    listed = staff_client.get(f"/admin/flowr/instance/?machine__id__exact={machine.pk}"
                              f"&state={draft.key}&status=active")
    assert listed.context["cl"].result_count == 2


def test_a_layout_computed_by_one_process_is_used_by_another(monkeypatch):
    """Workers share layouts through the configured cache (a file cache by default)."""
    import subprocess
    import sys
    import uuid

    from flowr import layout

    keys = [uuid.uuid4().hex for _ in range(3)]  # a shape no one has laid out yet
    code = ("import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = "
            "'flowr_site.settings'; django.setup(); from flowr import layout; "
            "keys = sys.argv[1:]; layout.cached_layout(keys, dict.fromkeys(keys, 100), "
            "[(keys[0], keys[1]), (keys[1], keys[2])])")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code, *keys], check=True, timeout=120, cwd=root)

    def never(*args):
        raise AssertionError("laid out again")

    monkeypatch.setattr(layout, "layout", never)
    layout.clear_local()
    found = layout.cached_layout(keys, dict.fromkeys(keys, 100),
                                 [(keys[0], keys[1]), (keys[1], keys[2])])
    assert set(found["nodes"]) == set(keys)


def test_publishing_from_the_preview_is_in_the_history_and_the_log(staff_client, admin_user):
    from django.contrib.admin.models import LogEntry

    machine = builder.create_machine("flowr_example", "Previewed")
    builder.add_child(machine.root_state, "flowr_example.C")
    preview = reverse("admin:flowr_machine_publish_preview", args=[machine.pk])
    draft = staff_client.get(preview).context["draft"]
    response = staff_client.post(preview, {"draft": draft}, follow=True)
    assert "Published version 1 of &#x27;Previewed&#x27;." in response.content.decode()
    revision = Revision.objects.get()
    assert (revision.comment, revision.user) == ("Published version 1", admin_user)
    assert LogEntry.objects.get().get_change_message() == "Published version 1 of 'Previewed'."
