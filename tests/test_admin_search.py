"""Finding instances: business keys and titles, search, filters, declared-key columns."""
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from flowr import builder, controls, engine
from flowr.admin.search import search
from flowr.exceptions import HookFailed
from flowr.models import Instance
from flowr.rules import Rule, RuleSet, register
from flowr.sync import sync_rule_sets
from tests.test_admin_instances import LIST, message, texts

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

START = reverse("admin:flowr_instance_start")


def found(client, **query):
    """Labels of the instances the list shows for `query` (asserting a 200)."""
    response = client.get(f"{LIST}?{urlencode(query)}")
    assert response.status_code == 200, response.get("Location")
    return sorted(i.label for i in response.context["cl"].result_list)


@pytest.fixture
def desk(demo_machines):
    """The demo instances (keys, titles and task data), plus a rejected order."""
    rejected = demo_machines["orders"].start(business_key="ORD-2000", title="Broken lamps",
                                             task_state={"customer": "Umbrella", "amount": 75})
    rejected.step()
    rejected.step(to="Rejected", data={"reason": "Out of stock"})
    return demo_machines


# -- search ---------------------------------------------------------------------------------

def test_search_finds_keys_titles_machines_ids_and_task_data(staff_client, desk):
    assert found(staff_client, q="ord-100") == [
        "Office chairs (ORD-1001)", "Printer paper (ORD-1002)", "Standing desks (ORD-1003)"]
    assert found(staff_client, q="PRINTER") == ["Printer paper (ORD-1002)"]
    assert found(staff_client, q="acme") == [
        "Feature request: export (TCK-503)", "Office chairs (ORD-1001)",
        "Standing desks (ORD-1003)"]
    assert found(staff_client, q="4600") == ["Standing desks (ORD-1003)"]
    assert found(staff_client, q="out of stock") == ["Broken lamps (ORD-2000)"]
    assert len(found(staff_client, q="Flowr exam")) == 3  # the machine's name
    unnamed = Instance.objects.filter(business_key="", title="").first()
    assert found(staff_client, q=unnamed.label) == [unnamed.label]  # "#3f2a1b4c"
    assert found(staff_client, q=str(unnamed.pk)) == [unnamed.label]
    assert found(staff_client, q="customer") == []  # keys are not values
    assert found(staff_client, q="nothing like this") == []


def test_search_never_fails_on_hostile_input(staff_client, desk):
    for term in ["%", "_", "\\", "'\"; drop table", "x" * 5000, "#", "----", "é" * 3,
                 "[]{}", "$.*"]:
        response = staff_client.get(LIST, {"q": term})
        assert response.status_code == 200, term
    assert "Searched for the first 200 characters only." in texts(
        staff_client.get(LIST, {"q": "y" * 300}))
    assert found(staff_client, q="%") == []  # LIKE wildcards are escaped


def test_search_and_filter_cost_a_constant_number_of_queries(staff_client, desk, admin_user):
    def count(query):
        url = f"{LIST}?{urlencode(query)}"
        staff_client.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url).status_code == 200
        return len(queries)

    queries = [{"q": "Acme"}, {"data__customer": "Acme Ltd"}, {"outcome": "rejected"},
               {"started_at__range__gte": "2000-01-01"}]
    before = [count(q) for q in queries]
    machine = desk["orders"]
    for n in range(40):
        machine.start(business_key=f"MORE-{n}", title="Acme more",
                      task_state={"customer": "Acme Ltd", "amount": n})
    assert [count(q) for q in queries] == before


# -- filters --------------------------------------------------------------------------------

def test_filter_by_declared_key_value(staff_client, desk):
    assert found(staff_client, data__customer="Acme Ltd") == [
        "Feature request: export (TCK-503)", "Office chairs (ORD-1001)",
        "Standing desks (ORD-1003)"]
    assert found(staff_client, data__customer="acme ltd") == []  # an exact value
    assert found(staff_client, data__amount="1200") == ["Office chairs (ORD-1001)"]
    assert found(staff_client, data__customer="Acme Ltd", data__amount="4600") == [
        "Standing desks (ORD-1003)"]
    assert found(staff_client, data__priority="high") == ["Cannot log in (TCK-501)"]
    html = staff_client.get(LIST, {"data__customer": "Globex"}).content.decode()
    assert 'name="data__customer" value="Globex"' in html and "flowr-remove-filter" in html


@pytest.mark.parametrize("query, text", [
    ({"data__nope": "1"}, "'nope' is not a searchable key; the rule sets declare: customer"),
    ({"data__customer": "x" * 201}, "must be at most 200 characters"),
    ({"data__customer": "a\x00b"}, "held a NUL character"),
    ({"outcome": "a\x00b"}, "held a NUL character"),
    ({"q": "a\x00b"}, "held a NUL character"),
])
def test_bad_filter_values_get_a_message_not_a_500(staff_client, desk, query, text):
    response = staff_client.get(LIST, query)
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    assert text in message(response)
    assert staff_client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize("query", [
    "_facets=1", "_facets=1&data__customer=Globex&outcome=rejected", "o=99", "o=-4.x",
    "started_at__range__gte=%00", "last_activity__range__lte=" + "9" * 5000,
    "outcome=" + "z" * 150, "data__customer=%FF%FE", "q=%00%00", "data__=1",
    "data__customer__contains=x", "search_data__customer=x",
])
def test_hostile_list_urls_never_answer_500(staff_client, desk, query):
    response = staff_client.get(f"{LIST}?{query}")
    assert response.status_code in (200, 302, 400), (query, response.status_code)
    if response.status_code == 302:
        assert staff_client.get(response["Location"]).status_code == 200


def test_status_outcome_and_date_range_filters(staff_client, desk):
    orders = desk["orders"]
    suspended = orders.start(title="Held")
    controls.suspend(suspended, reason="audit")
    cancelled = orders.start(title="Gone")
    controls.cancel(cancelled, reason="dup")
    assert found(staff_client, status="suspended") == ["Held"]
    assert found(staff_client, status="cancelled") == ["Gone"]
    assert found(staff_client, outcome="rejected") == ["Broken lamps (ORD-2000)"]
    assert "Broken lamps (ORD-2000)" not in found(staff_client, outcome="-")
    old = orders.start(title="Old one")
    Instance.objects.filter(pk=old.pk).update(
        started_at=timezone.now() - timedelta(days=40),
        last_activity=timezone.now() - timedelta(days=30))
    day = (timezone.localdate() - timedelta(days=35)).isoformat()
    assert found(staff_client, started_at__range__lte=day) == ["Old one"]
    assert "Old one" not in found(staff_client, started_at__range__gte=day)
    assert found(staff_client, last_activity__range__lte=day) == []
    for bad in ["tomorrow", "2024-13-45", "9" * 40]:  # ignored, never a 500
        assert staff_client.get(LIST, {"started_at__range__gte": bad}).status_code == 200
    nul = staff_client.get(LIST, {"started_at__range__gte": "\x00"})  # the site's NUL guard
    assert nul.status_code == 302 and nul["Location"].endswith("?e=1")
    html = staff_client.get(LIST).content.decode()
    for title in ("By start date", "By last activity", "outcome", "task data (exact value)"):
        assert title.lower() in html.lower()


# -- columns ------------------------------------------------------------------------------------

def test_declared_keys_are_sortable_columns_and_outcome_is_shown(staff_client, desk):
    machine = desk["orders"]
    url = f"{LIST}?machine__id__exact={machine.pk}"
    response = staff_client.get(url)
    headers = [h["text"] for h in response.context["result_headers"]]
    assert {"outcome", "customer", "amount", "rejection reason"} <= set(headers)
    assert "priority" not in headers  # a key of the support rule set
    column = headers.index("amount")
    assert response.context["result_headers"][column]["sortable"]
    ordered = staff_client.get(f"{url}&o={column}")  # amounts sort as numbers
    amounts = [i.search_data.get("amount") for i in ordered.context["cl"].result_list]
    assert amounts == [75, 80, 1200, 4600]
    assert ">rejected<" in response.content.decode()
    rejected = Instance.objects.get(business_key="ORD-2000")
    page = staff_client.get(reverse("admin:flowr_instance_change", args=[rejected.pk]))
    assert "Outcome" in page.content.decode() and ">rejected<" in page.content.decode()
    everything = [h["text"] for h in staff_client.get(LIST).context["result_headers"]]
    assert {"customer", "priority", "amount"} <= set(everything)


# -- business key and title -----------------------------------------------------------------

def test_start_form_sets_business_key_and_title(staff_client, demo_machines):
    machine = demo_machines["orders"]
    response = staff_client.post(START, {"machine": machine.pk, "count": 1,
                                         "business_key": "ORD-9", "title": "Nine tables"})
    instance = Instance.objects.get(business_key="ORD-9")
    assert response["Location"] == reverse("admin:flowr_instance_change", args=[instance.pk])
    assert message(response) == ("Started instance Nine tables (ORD-9) of 'Order approval' "
                                 "(version 1).")
    page = staff_client.get(response["Location"]).content.decode()
    assert "Nine tables (ORD-9)</a>" in page or "Nine tables (ORD-9)</li>" in page
    taken = staff_client.post(START, {"machine": machine.pk, "count": 1,
                                      "business_key": "ORD-9", "title": "Again"})
    html = taken.content.decode()
    assert taken.status_code == 200 and "already has an instance with the business key" in html
    assert 'value="Again"' in html  # nothing typed is lost
    many = staff_client.post(START, {"machine": machine.pk, "count": 3, "business_key": "K"})
    assert "A business key names one instance" in many.content.decode()
    assert staff_client.post(START, {"machine": machine.pk, "count": 2,
                                     "title": "Batch"}).status_code == 302
    assert Instance.objects.filter(title="Batch").count() == 2
    assert Instance.objects.filter(business_key="K").count() == 0


# -- search data is committed data only ---------------------------------------------------------

@pytest.fixture
def typo_machine(db):
    """Start → Typed (writes customer) | Broken (writes customer, then raises)."""
    class Start(Rule):
        children = ["Typed", "Broken"]
        multiple_paths = True
        search_fields = ["customer"]

    class Typed(Rule):
        def on_enter(self, instance):
            instance.task_state["customer"] = "Committed Co"

    class Broken(Rule):
        def on_enter(self, instance):
            instance.task_state["customer"] = "Phantom Inc"
            raise RuntimeError("broken hook")

    register(RuleSet("search_typo", root=Start, rules=[Start, Typed, Broken]))
    sync_rule_sets()
    machine = builder.create_machine("search_typo", "Typo")
    builder.add_child(machine.root_state, "search_typo.Typed")
    builder.add_child(machine.root_state, "search_typo.Broken")
    machine.publish()
    return machine


def test_a_rolled_back_step_never_becomes_searchable(staff_client, typo_machine):
    instance = typo_machine.start(title="Rollback probe")
    with pytest.raises(HookFailed):
        instance.step(to="Broken")
    with pytest.raises(RuntimeError), transaction.atomic():
        Instance.objects.get(pk=instance.pk).step(to="Typed")  # committed nowhere
        raise RuntimeError("the caller's transaction fails after the step")
    assert found(staff_client, q="Phantom") == found(staff_client, q="Committed") == []
    assert found(staff_client, data__customer="Phantom Inc") == []
    assert Instance.objects.get(pk=instance.pk).search_data == {}
    instance.step(to="Typed")
    assert found(staff_client, data__customer="Committed Co") == ["Rollback probe"]


@pytest.fixture
def redis_conn(request, demo_machines):
    """The Redis store on this checkout's test DB (configured after the demo loaded)."""
    return request.getfixturevalue("redis_db")


@pytest.mark.redis
def test_a_redis_store_instance_is_found_by_a_declared_key(staff_client, demo_machines,
                                                           redis_conn):
    from flowr.statestore import get_store, redis_store

    assert isinstance(get_store(), redis_store.StateStore)
    ticket = demo_machines["support"].start(business_key="R-1", task_state={
        "customer": "Redis Customer", "priority": "high"})
    ticket.step()
    assert redis_conn.exists(redis_store.KEY_PREFIX + f"{ticket.pk}:1")
    assert found(staff_client, data__customer="Redis Customer") == ["R-1"]
    assert found(staff_client, q="redis cust") == ["R-1"]
    engine.save_task_state(ticket, {"customer": "Renamed", "priority": "low"})
    assert found(staff_client, data__customer="Renamed") == ["R-1"]
    assert found(staff_client, data__customer="Redis Customer") == []


# -- PostgreSQL: the queries use the indexes of migration 0003_search -----------------------

def _plan(queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a small table would be scanned
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_search_and_filter_use_the_postgres_indexes(postgres_only, desk):
    from flowr.admin.search import data_q

    plan = _plan(search(Instance.objects.all(), "ORD-1"))
    for index in ("flowr_inst_bkey_trgm", "flowr_inst_title_trgm", "flowr_inst_values_trgm"):
        assert index in plan, plan
    assert "BitmapOr" in plan and "Seq Scan" not in plan
    plan = _plan(Instance.objects.filter(data_q("customer", "Acme Ltd", "postgresql")))
    assert "flowr_inst_search_data_gin" in plan, plan
