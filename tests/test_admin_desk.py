"""The admin index is the desk: My work, Machines, the section registry, query counts."""
import random
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from flowr import assignment, engine
from flowr.admin import desk
from flowr.models import HistoryEntry, Instance
from tests.desk import STEPPER, make_user, review_machine

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

INDEX = reverse("admin:index")


@pytest.fixture
def machine(db):
    return review_machine()


@pytest.fixture
def rita(db):
    return make_user("rita", *STEPPER, groups=["Reviewers"])


def login(user):
    client = Client()
    client.force_login(user)
    return client


def started(machine, *names, user=None):
    instance = machine.start(user=user)
    for name in names:
        engine.step(instance, to=name, user=user)
    return Instance.objects.get(pk=instance.pk)


def section(response, key):
    """The desk section (a DashboardModule) with `key`, as rendered."""
    for module in response.context["dashboard"].children:
        if getattr(module, "key", None) == key:
            return module
    raise AssertionError(f"no section {key}")


def work(response, key):
    lists = {w.key: w for w in section(response, "my-work").lists}
    return [row["instance"].pk for row in lists[key].rows], lists[key]


# -- My work -------------------------------------------------------------------------------

def test_my_work_lists_assigned_claimable_and_recently_stepped(machine, rita):
    rick = make_user("rick", *STEPPER, groups=["Reviewers"])
    mine, waiting, taken = (started(machine, "Review") for _ in range(3))
    assignment.claim(mine, rita)
    assignment.claim(taken, rick)
    stepped = started(machine, "Review", user=rita)  # Todo names no groups: anyone steps
    assignment.claim(stepped, rick)
    response = login(rita).get(INDEX)
    assert response.status_code == 200
    assert work(response, "assigned")[0] == [mine.pk]
    assert work(response, "claimable")[0] == [waiting.pk]
    assert work(response, "recent")[0] == [stepped.pk]
    html = response.content.decode()
    assert "My work" in html and "Claimable by my groups" in html and "assigned to rick" in html
    claim = reverse("admin:flowr_instance_claim", args=[waiting.pk])
    assert f'form="flowr-step-{waiting.pk}" formaction="{claim}"' in html
    for instance in (mine, waiting):  # the instance list's step buttons and hidden forms
        assert f'form="flowr-step-{instance.pk}" name="to"' in html
        assert html.count(f'id="flowr-step-{instance.pk}"') == 1
    assert 'disabled title="Assigned to rick; only they may step it."' in html


def test_step_and_claim_from_the_desk_return_to_it(machine, rita):
    waiting = started(machine, "Review")
    client = login(rita)
    client.get(INDEX)
    response = client.post(reverse("admin:flowr_instance_claim", args=[waiting.pk]),
                           {"position": waiting.step_count, "next": INDEX})
    assert response["Location"] == INDEX
    assert Instance.objects.get(pk=waiting.pk).assignee == rita
    done = engine.compiled(waiting.version).resolve("Done")
    response = client.post(reverse("admin:flowr_instance_step", args=[waiting.pk]),
                           {"position": waiting.step_count, "to": done, "next": INDEX})
    assert response["Location"] == INDEX
    assert Instance.objects.get(pk=waiting.pk).state_name == "Done"
    page = client.get(INDEX)
    assert work(page, "assigned")[0] == [] and work(page, "recent")[0] == [waiting.pk]


def test_lists_show_ten_rows_and_link_to_all(machine, rita):
    for _ in range(12):
        assignment.claim(started(machine, "Review"), rita)
    rows, assigned = work(login(rita).get(INDEX), "assigned")
    assert len(rows) == 10 and assigned.total == 12
    assert assigned.more_url.endswith("?assignee=me&status=active")


def test_a_user_in_no_group_is_told_why_nothing_is_claimable(machine):
    loner = make_user("loner", *STEPPER)
    started(machine, "Review")
    response = login(loner).get(INDEX)
    assert "You are in no group" in response.content.decode()


def test_staff_who_may_not_view_instances_see_no_sections(machine):
    clerk = make_user("clerk", "flowr.view_machine")
    response = login(clerk).get(INDEX)
    html = response.content.decode()
    assert response.status_code == 200 and "My work" not in html and "Oldest waiting" not in html


# -- Machines -----------------------------------------------------------------------------

def test_machine_counts_link_to_exactly_those_rows(machine, rita, admin_user):
    for names in ((), (), ("Review",), ("Review", "Done"), ("Review", "Todo")):
        started(machine, *names)
    idle = started(machine, "Review")
    Instance.objects.filter(pk=idle.pk).update(last_activity=timezone.now() - timedelta(days=9))
    client = login(admin_user)
    response = client.get(INDEX)
    [block] = [m for m in section(response, "machines").machines if m["name"] == machine.name]
    counts = {status: (count, url) for status, count, url in block["counts"]}
    assert {s: c for s, (c, _) in counts.items()} == {"active": 4, "finished": 1, "expired": 1}
    states = {row["name"]: row for row in block["states"]}
    assert {name: row["active"] for name, row in states.items()} == {"Todo": 3, "Review": 1}
    assert list(states) == ["Todo", "Review"]  # the graph's order
    for count, url in [*counts.values(), *((r["active"], r["url"]) for r in states.values())]:
        listed = client.get(url)
        assert listed.status_code == 200 and listed.context["cl"].result_count == count, url


def test_oldest_waiting_instance_and_stuck_and_overdue(machine, admin_user):
    old, new = started(machine, "Review"), started(machine, "Review")
    now = timezone.now()
    Instance.objects.filter(pk=old.pk).update(state_entered_at=now - timedelta(days=3),
                                              title="Slow one", due_at=now - timedelta(hours=1))
    response = login(admin_user).get(INDEX)
    [block] = [m for m in section(response, "machines").machines if m["name"] == machine.name]
    [review] = [row for row in block["states"] if row["name"] == "Review"]
    assert review["oldest"] == "Slow one" and review["stuck"] and review["overdue"] == 1
    html = response.content.decode()
    assert "stuck for 3\xa0days" in html or "stuck for 3 days" in html
    assert new.label not in html or html.index("Slow one") >= 0


def test_an_archived_machine_is_listed_only_while_instances_run(machine, admin_user):
    started(machine)
    machine.archived = True
    machine.save()
    names = [m["name"] for m in section(login(admin_user).get(INDEX), "machines").machines]
    assert machine.name in names
    Instance.objects.all().update(status=Instance.FINISHED)
    names = [m["name"] for m in section(login(admin_user).get(INDEX), "machines").machines]
    assert machine.name not in names


# -- the section registry -------------------------------------------------------------------

def test_other_modules_add_sections_without_editing_the_desk(admin_user):
    class Incidents(desk.DeskSection):
        key = "incidents-test"
        title = "Incidents (test)"
        order = 30
        seen = []

        def is_visible(self, request):
            return request.user.is_superuser

        def load(self, request):
            self.children = ["one"]
            self.seen.append(request.user.username)

    desk.register(Incidents)
    try:
        assert desk.is_registered("incidents-test")
        with pytest.raises(desk.SectionAlreadyRegistered, match="incidents-test"):
            desk.register(Incidents)
        keys = [s.key for s in desk.get_sections()]
        assert keys.index("my-work") < keys.index("machines") < keys.index("incidents-test")
        html = login(admin_user).get(INDEX).content.decode()
        assert "Incidents (test)" in html and Incidents.seen == ["admin"]
        viewer = make_user("viewer", "flowr.view_instance")
        assert "Incidents (test)" not in login(viewer).get(INDEX).content.decode()
    finally:
        desk.unregister("incidents-test")
    assert not desk.is_registered("incidents-test")


@pytest.mark.parametrize("query", ["?x=%00", "?q=" + "a" * 5000, "?o=-1", "?assignee=<x>"])
def test_hostile_index_queries_never_500(admin_user, query):
    assert login(admin_user).get(INDEX + query).status_code == 200


# -- constant query count -------------------------------------------------------------------

def add_instances(machine, count, user, seed=0):
    """bulk_create `count` instances in random states, some assigned, stepped, overdue."""
    rng = random.Random(seed)
    version = machine.latest_version()
    graph = engine.compiled(version)
    now = timezone.now()
    rows, history = [], []
    for _ in range(count):
        key = rng.choice(list(graph.names))
        final = not graph.children[key]
        entered = now - timedelta(minutes=rng.randrange(1, 10_000))
        rows.append(Instance(
            machine=machine, version=version, state_key=key, state_name=graph.names[key],
            status=Instance.FINISHED if final else Instance.ACTIVE, started_at=entered,
            last_activity=now, state_entered_at=entered,
            assignee=user if not final and rng.random() < 0.2 else None,
            due_at=now - timedelta(hours=1) if rng.random() < 0.1 else None))
    Instance.objects.bulk_create(rows, batch_size=1000)
    for instance in rows[:: max(1, count // 50)]:
        history.append(HistoryEntry(instance=instance, seq=0, kind=HistoryEntry.STEP,
                                    to_key=instance.state_key, to_name=instance.state_name,
                                    version=version, user=user, at=now))
    HistoryEntry.objects.bulk_create(history)


def index_queries(client):
    client.get(INDEX)  # warm: compiled versions, permissions of this process
    with CaptureQueriesContext(connection) as queries:
        response = client.get(INDEX)
    assert response.status_code == 200
    return len(queries), response


@pytest.mark.parametrize("who", ["reviewer", "superuser"])
def test_index_query_count_is_the_same_for_10_and_10000_instances(machine, rita, admin_user,
                                                                  who):
    user = rita if who == "reviewer" else admin_user
    other = review_machine("Second desk")
    client = login(user)
    add_instances(machine, 5, rita)
    add_instances(other, 5, rita, seed=1)
    small, _ = index_queries(client)
    add_instances(machine, 5_000, rita, seed=2)
    add_instances(other, 4_990, rita, seed=3)
    review_machine("Third desk")  # more machines and states cost no more queries
    assert Instance.objects.count() == 10_000
    large, response = index_queries(client)
    assert large == small
    rows, assigned = work(response, "assigned")
    if who == "reviewer":
        assert len(rows) == 10 and assigned.total > 1000
        assert len(work(response, "claimable")[0]) == 10


# -- the demo team ---------------------------------------------------------------------------

def test_setupdemo_creates_a_team_with_waiting_work_once(db, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.FLOWR_DEMO = True
    out = StringIO()
    call_command("setupdemo", stdout=out)
    text = out.getvalue()
    assert "username 'reviewer', password 'flowr-reviewer'" in text
    assert "username 'shipper', password 'flowr-shipper'" in text
    call_command("setupdemo", stdout=StringIO())  # idempotent
    assert Instance.objects.filter(business_key="ORD-2002").count() == 1
    reviewer = get_user_model().objects.get(username="reviewer")
    assert reviewer.check_password("flowr-reviewer") and reviewer.is_staff
    response = login(reviewer).get(INDEX)
    assigned = [row["instance"].title for row in
                {w.key: w for w in section(response, "my-work").lists}["assigned"].rows]
    claimable = {row["instance"].title for row in
                 {w.key: w for w in section(response, "my-work").lists}["claimable"].rows}
    assert assigned == ["Conference table"] and claimable == {"Monitor arms", "Whiteboards"}
    shipper = get_user_model().objects.get(username="shipper")
    rows = {w.key: w for w in section(login(shipper).get(INDEX), "my-work").lists}
    assert [r["instance"].title for r in rows["claimable"].rows] == ["Laptop bags"]
