"""Shared fixtures: registry snapshot, services (Redis, PostgreSQL, Chromium), factories."""
import os
import shutil
import socket

import pytest

REQUIRE_SERVICES = os.environ.get("FLOWR_REQUIRE_SERVICES") == "1"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# A separate DB number, flushed by the tests that use it; parallel checkouts set their own.
# Each pytest-xdist worker adds its number (gw1: +1), so that two workers never flush
# each other's keys (`make test` runs two: DBs 9 and 10 by default).
REDIS_TEST_DB = int(os.environ.get("FLOWR_REDIS_TEST_DB", "9")) + int(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "artifacts")


def need_service(name, available, how):
    """Skip loudly, or fail under FLOWR_REQUIRE_SERVICES=1, when a service is missing."""
    if available:
        return
    message = f"{name} is not available ({how})"
    if REQUIRE_SERVICES:
        pytest.fail(f"FLOWR_REQUIRE_SERVICES=1 but {message}", pytrace=False)
    pytest.skip(f"SKIPPED FOR MISSING SERVICE: {message}")


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _registry_snapshot():
    """Restore the rules registry and the compiled-version cache after each test."""
    from flowr import engine
    from flowr.rules import registry

    snapshot = registry._snapshot()
    engine.clear_cache()
    yield
    registry._restore(snapshot)
    engine.clear_cache()


@pytest.fixture
def redis_url():
    need_service("Redis", port_open(REDIS_HOST, REDIS_PORT), f"{REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}"


def use_redis(settings, port=REDIS_PORT, user="", password=""):
    """Point the task-state store at the test Redis DB (optionally as an ACL user)."""
    settings.FLOWS_STATE_STORE = "flowr.statestore.redis_store"
    settings.FLOWS_REDIS_STATE_STORE_HOST = REDIS_HOST
    settings.FLOWS_REDIS_STATE_STORE_PORT = port
    settings.FLOWS_REDIS_STATE_STORE_DB = REDIS_TEST_DB
    settings.FLOWS_REDIS_STATE_STORE_USER = user
    settings.FLOWS_REDIS_STATE_STORE_PASSWORD = password
    settings.FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT = 0.5


@pytest.fixture
def redis_db(redis_url, settings):
    """The Redis store on the test DB (flushed before and after; only that DB)."""
    import redis

    use_redis(settings)
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def chromium_path():
    need_service("Chromium", os.path.exists(CHROMIUM) or shutil.which("chromium"), CHROMIUM)
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


@pytest.fixture
def artifacts_dir():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def postgres_only(db):
    """Skip on SQLite: this test runs in the PostgreSQL pass of `make test`."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL pass (DATABASE_URL); this pass uses "
                    f"{connection.vendor}")


def pytest_sessionstart(session):
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")) and not port_open("127.0.0.1", 5432):
        if REQUIRE_SERVICES:
            pytest.exit("FLOWR_REQUIRE_SERVICES=1 but PostgreSQL is not reachable", returncode=1)
        pytest.exit("SKIPPED FOR MISSING SERVICE: PostgreSQL is not reachable on "
                    "127.0.0.1:5432; the PostgreSQL pass did not run", returncode=0)


# -- factories ----------------------------------------------------------------------

@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def example_machine(db):
    """The flowr example A→C→(D|E), E→A, built through the builder and published."""
    from flowr import builder

    machine = builder.create_machine("flowr_example", "Example")
    a = machine.root_state
    c = builder.add_child(a, "flowr_example.C")
    builder.add_child(c, "flowr_example.D")
    e = builder.add_child(c, "flowr_example.E")
    builder.connect(e, a)
    machine.publish()
    return machine


@pytest.fixture
def demo_machines(db):
    from flowr.demo.setup import load_demo
    from flowr.models import Machine

    load_demo()
    return {m.rule_set.key: m for m in Machine.objects.select_related("rule_set")}


# -- browser (Playwright driving Debian's Chromium) -----------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-gpu", "--no-first-run",
                 "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="session")
def _browser():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        yield None
        return
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop; Django's ORM in the test thread is fine.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(_browser, chromium_path, live_server):
    """A fresh browser page (1366×900) whose base URL is the live server."""
    context = _browser.new_context(viewport={"width": 1366, "height": 900},
                                   base_url=live_server.url)
    context.set_default_timeout(15000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def admin_page(page, admin_user):
    """A browser page logged in to the admin as a superuser (admin / pw)."""
    page.goto("/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page
