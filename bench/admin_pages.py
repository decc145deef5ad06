"""Instance admin pages: render time and query count of the list and of one instance page.

    python bench/admin_pages.py

Uses a temporary SQLite file with the project's settings (DEBUG off), the demo machines,
and instances spread over their states with bulk_create. A logged-in superuser requests
the pages through django.test.Client; times are medians of RUNS warm requests. Prints:

    instance_list_ms, instance_list_queries   (10,000 instances, first page of 100)
    instance_list_queries_10                  (10 instances)
    instance_page_ms, instance_page_queries   (one instance with a few steps of history)
    incident_list_ms, incident_list_queries   (1,000 open incidents, first page of 100)
    incident_list_queries_10                  (10 incidents)
    machine_page_ms_N, machine_page_queries_N (the builder page of an N-state machine,
                                               N = 10, 200, 1000)
    machine_page_after_edit_ms_N              (first view after a builder edit, N = 200, 1000)
    machine_page_kb_1000, machine_page_peak_mib_1000  (HTML size; tracemalloc peak of one
                                               warm request above the memory before it)
    (each machine is published with N/2 instances spread over its states, so the diagram
    draws its counts)

The machines are tests.factories.hub_machine: a hub with spokes, each leading a chain of
ten links, every other chain looping back to the hub and the others ending open.

and, on PostgreSQL (FLOWR_BENCH_PG_URL; a child process, 100,000 instances):

    search_instances_create_s                 (bulk-creating the 100,000 instances)
    search_business_key_ms, search_business_key_queries   (the list searched by a key)
    filter_declared_key_ms, filter_declared_key_queries   (the list filtered customer = …)

and the desk (the admin index), on PostgreSQL in another child process, as a reviewer
with work in every list:

    index_ms, index_queries                   (10,000 instances)
    index_queries_10                          (10 instances)

`python bench/admin_pages.py machine_page` (or instance, search, index) prints only those groups.
"""
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from datetime import timedelta

from _django import setup

RUNS = 15
INSTANCES = 10_000
DEMO_RULE_SETS = ("flowr_example", "orders", "support")
SEARCH_INSTANCES = 100_000
PG_URL = os.environ.get("FLOWR_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/flowr_bench")


def add_instances(count, user, seed=0, machines=None):
    """bulk_create `count` instances over the demo machines (or `machines`), in random states."""
    from django.utils import timezone

    from flowr import engine
    from flowr.models import Instance, Machine

    rng = random.Random(seed)
    if machines is None:
        machines = Machine.objects.filter(rule_set__key__in=DEMO_RULE_SETS).order_by("pk")
    versions = [m.latest_version() for m in machines]
    now = timezone.now()
    rows = []
    for i in range(count):
        version = versions[i % len(versions)]
        graph = engine.compiled(version)
        key = rng.choice(list(graph.names))
        rows.append(Instance(
            machine_id=version.machine_id, version=version, state_key=key,
            state_name=graph.names[key], started_by=user, started_at=now, last_activity=now,
            status=Instance.ACTIVE if graph.children[key] else Instance.FINISHED))
    Instance.objects.bulk_create(rows, batch_size=1000)


def measure(client, url, runs=RUNS):
    """(median ms, queries) of warm GET requests of `url`."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm: compiled definitions, templates, permission caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return statistics.median(times), len(queries)


def stepped_instance(user):
    """A support ticket with some history and task state."""
    from flowr.models import Machine

    ticket = Machine.objects.get(rule_set__key="support").start(user=user)
    for name in ("Open", "Waiting on customer", "Open", "Resolved", "Open"):
        ticket.step(to=name, user=user, note=f"to {name}")
    return ticket


def add_incidents(count, offset=0):
    """bulk_create open incidents on `count` of the instances."""
    from django.utils import timezone

    from flowr.models import Incident, Instance

    now = timezone.now()
    Incident.objects.bulk_create([
        Incident(instance=instance, position=0, state_key=instance.state_key,
                 state_name=instance.state_name, target_key="x", target_name="Next",
                 action=f"Timed step from '{instance.state_name}' to 'Next' (due after 1 day)",
                 error="Step to 'Next' refused: a guard said no.", attempts=4,
                 created_at=now, failed_at=now)
        for instance in Instance.objects.order_by("pk")[offset:offset + count]],
        batch_size=1000)


def incident_figures(client, user):
    """The incident list with 10 and with 1,000 open incidents (on the instances there)."""
    from django.urls import reverse

    from flowr.models import Incident

    Incident.objects.all().delete()
    url = reverse("admin:flowr_incident_changelist")
    add_incidents(10)
    _, queries_10 = measure(client, url)
    add_incidents(990, offset=10)
    list_ms, list_queries = measure(client, url)
    return {"incident_list_ms": list_ms, "incident_list_queries": list_queries,
            "incident_list_queries_10": queries_10}


def instance_figures(client, user):
    """The instance list (10 and 10,000 instances) and one instance page."""
    from django.urls import reverse

    from flowr.models import Instance

    Instance.objects.all().delete()
    url = reverse("admin:flowr_instance_changelist")
    add_instances(10, user)
    _, queries_10 = measure(client, url)
    add_instances(INSTANCES - 10, user, seed=1)
    list_ms, list_queries = measure(client, url)
    ticket = stepped_instance(user)
    page_ms, page_queries = measure(client, reverse("admin:flowr_instance_change",
                                                    args=[ticket.pk]))
    return {"instance_list_ms": list_ms, "instance_list_queries": list_queries,
            "instance_list_queries_10": queries_10, "instance_page_ms": page_ms,
            "instance_page_queries": page_queries}


def _machine_url(machine):
    from django.urls import reverse

    return reverse("admin:flowr_machine_change", args=[machine.pk])


def _first_views_after_edits(client, machine, runs=5):
    """Median ms of the first page view after each of `runs` builder edits (add, remove)."""
    from flowr import builder

    end = machine.states.get(key="s1l8")  # the open end of chain 1
    times = []
    for i in range(runs * 2):
        if i % 2 == 0:
            added = builder.add_child(end, "hub.Link", name=f"Extra {i}")
        else:
            builder.remove_state(added)
        start = time.perf_counter()
        response = client.get(_machine_url(machine))
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(times)


def _peak_mib(client, url):
    """tracemalloc peak (MiB) of one warm request above the memory in use before it."""
    client.get(url)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    response = client.get(url)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert response.status_code == 200
    return (peak - before) / 2 ** 20


def machine_page_figures(client, user):
    """The builder page of 10-, 200- and 1,000-state machines (tests.factories.hub_machine)."""
    from tests.factories import hub_machine

    figures = {}
    for count in (10, 200, 1000):
        machine = hub_machine(count, name=f"Bench {count}")
        machine.publish()
        add_instances(count // 2, user, seed=count, machines=[machine])  # counts on the diagram
        url = _machine_url(machine)
        runs = RUNS if count < 1000 else 7
        ms, queries = measure(client, url, runs=runs)
        figures[f"machine_page_ms_{count}"] = ms
        figures[f"machine_page_queries_{count}"] = queries
        if count >= 200:
            figures[f"machine_page_after_edit_ms_{count}"] = _first_views_after_edits(
                client, machine)
        if count == 1000:
            figures["machine_page_kb_1000"] = len(client.get(url).content) / 1024
            figures["machine_page_peak_mib_1000"] = _peak_mib(client, url)
    return figures


def add_searchable_instances(count, user, seed=2):
    """bulk_create `count` orders and tickets with business keys, titles and search data."""
    from django.utils import timezone

    from flowr import engine
    from flowr.models import Instance, Machine

    rng = random.Random(seed)
    versions = {m.rule_set.key: m.latest_version()
                for m in Machine.objects.select_related("rule_set")}
    customers = [f"Customer {n:04d}" for n in range(1000)]
    now = timezone.now()
    rows = []
    for i in range(count):
        kind = "orders" if i % 2 else "support"
        version = versions[kind]
        graph = engine.compiled(version)
        key = rng.choice(list(graph.names))
        data = {"customer": rng.choice(customers)}
        data.update({"amount": rng.randrange(10, 10_000)} if kind == "orders"
                    else {"priority": rng.choice(["low", "normal", "high"])})
        rows.append(Instance(
            machine_id=version.machine_id, version=version, state_key=key,
            state_name=graph.names[key], started_by=user, started_at=now,
            last_activity=now - timedelta(seconds=rng.randrange(10_000_000)),
            business_key=f"{'ORD' if kind == 'orders' else 'TCK'}-{i:07d}",
            title=f"{rng.choice(['Chairs', 'Desks', 'Login', 'Invoice'])} {i}",
            search_data=data,
            status=Instance.ACTIVE if graph.children[key] else Instance.FINISHED))
    Instance.objects.bulk_create(rows, batch_size=2000)


def search_figures_postgres():
    """Search by business key and filter by a declared key over 100,000 instances."""
    from urllib.parse import urlencode

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from flowr.demo.setup import load_demo

    _bench_static()
    load_demo()
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    began = time.perf_counter()
    add_searchable_instances(SEARCH_INSTANCES, user)
    print(f"search_instances_create_s: {time.perf_counter() - began:.1f}")
    with connection.cursor() as cursor:  # the steady state autovacuum would reach
        cursor.execute("VACUUM ANALYZE flowr_instance")
    client = Client()
    client.force_login(user)
    url = reverse("admin:flowr_instance_changelist")
    for name, query in (("search_business_key", {"q": "ORD-0031337"}),
                        ("filter_declared_key", {"data__customer": "Customer 0042"})):
        ms, queries = measure(client, f"{url}?{urlencode(query)}")
        print(f"{name}_ms: {ms:.1f}")
        print(f"{name}_queries: {queries}")


def _bench_static():
    """DEBUG is off; serve static URLs without a collectstatic manifest."""
    from django.test.utils import override_settings

    override_settings(STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }).enable()


def main_postgres():
    warnings.filterwarnings("ignore", message="No directory at")
    setup(PG_URL)
    search_figures_postgres()


def run_postgres_figures():
    """The PostgreSQL figures, in a child process (Django is set up once per process)."""
    sys.stdout.flush()
    from _django import postgres_available

    if postgres_available():
        subprocess.run([sys.executable, __file__, "--postgres"], check=True)
    else:
        print("search_business_key_ms: unavailable (PostgreSQL not reachable)",
              file=sys.stderr)


def _fresh_layout_cache():
    """A layout cache of this run only: layouts of earlier runs would hide the work."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="flowr-bench-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["FLOWR_CACHE_DIR"] = folder


def main():
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic
    _fresh_layout_cache()
    setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from flowr.demo.setup import load_demo
    from flowr.models import Instance

    _bench_static()
    load_demo()
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    client = Client()
    client.force_login(user)
    # Each group takes (client, user) and returns {figure name: value}.
    groups = [instance_figures, incident_figures, machine_page_figures]
    wanted = tuple(sys.argv[1:]) or ("instance", "incident", "machine_page", "search", "index")
    groups = [g for g in groups if g.__name__.startswith(wanted)]
    for group in groups:
        for name, value in group(client, user).items():
            print(f"{name}: {value:.1f}" if isinstance(value, float) else f"{name}: {value}",
                  flush=True)
    print(f"(instances: {Instance.objects.count()}, runs per figure: {RUNS}, database: "
          f"SQLite file, load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)",
          file=sys.stderr)
    if "search" in wanted:
        run_postgres_figures()
    if "index" in wanted:
        index_figures()


# -- the desk (admin index) on PostgreSQL ------------------------------------------------------

def index_figures():
    """index_ms, index_queries and index_queries_10, measured in a child process."""
    sys.stdout.flush()
    from _django import postgres_available

    if not postgres_available():
        print("index_ms: unavailable (PostgreSQL not reachable)", file=sys.stderr)
        return
    subprocess.run([sys.executable, os.path.abspath(__file__), "--index-postgres"], check=True)


def desk_reviewer():
    """A reviewer in every demo group who may step and approve: every desk list has rows."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from flowr.demo.setup import GROUPS

    user = get_user_model().objects.create_user("bench-reviewer", is_staff=True)
    user.groups.add(*Group.objects.filter(name__in=GROUPS))
    user.user_permissions.add(*Permission.objects.filter(
        codename__in=("view_instance", "step_instance", "approve_order")))
    return user


def give_work(user, share=10):
    """Assign every `share`-th active instance to the user and record a step by them."""
    from django.utils import timezone

    from flowr.models import HistoryEntry, Instance

    active = list(Instance.objects.filter(status=Instance.ACTIVE, assignee__isnull=True,
                                          history__isnull=True).order_by("pk")[::share])
    Instance.objects.filter(pk__in=[i.pk for i in active]).update(assignee=user)
    HistoryEntry.objects.bulk_create(
        HistoryEntry(instance=i, seq=0, kind=HistoryEntry.STEP, to_key=i.state_key,
                     to_name=i.state_name, version_id=i.version_id, user=user,
                     at=timezone.now()) for i in active)


def main_index_postgres():
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic
    setup(PG_URL)
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from flowr.demo.setup import load_demo
    from flowr.models import Instance

    _bench_static()
    load_demo()
    Instance.objects.all().delete()
    user = desk_reviewer()
    client = Client()
    client.force_login(user)
    url = reverse("admin:index")
    add_instances(10, user)
    give_work(user, share=3)
    _, queries_10 = measure(client, url)
    add_instances(INSTANCES - 10, user, seed=1)
    give_work(user)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as autovacuum keeps them after a load
    index_ms, index_queries = measure(client, url)
    print(f"index_ms: {index_ms:.1f}")
    print(f"index_queries: {index_queries}")
    print(f"index_queries_10: {queries_10}")
    print(f"(desk: {Instance.objects.count()} instances, "
          f"{Instance.objects.filter(assignee=user).count()} assigned to the reviewer, "
          f"runs: {RUNS}, database: PostgreSQL)", file=sys.stderr)


if __name__ == "__main__":
    if "--postgres" in sys.argv:
        main_postgres()
    elif "--index-postgres" in sys.argv:
        main_index_postgres()
    else:
        main()
