"""The Redis permissions Flowr documents are exactly what it needs: real ACL users, each
missing one permission in turn, fail with a clear error; the documented ACL suffices."""
import os
import secrets

import pytest

from flowr.statestore import StateNotFound, StoreUnavailable, get_store
from flowr.statestore.redis_store import ACL_RULES, KEY_PREFIX, REQUIRED_COMMANDS
from tests.conftest import REDIS_HOST, REDIS_PORT, REDIS_TEST_DB

pytestmark = [pytest.mark.redis, pytest.mark.django_db]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def admin_redis(redis_url):
    """A connection with every right, for ACL SETUSER/DELUSER and cleaning the test DB."""
    import redis

    assert REDIS_TEST_DB != 0, "the ACL tests need a non-zero DB (SELECT is on the list)"
    conn = redis.Redis.from_url(redis_url, protocol=2)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def acl_user(admin_redis, settings):
    """make(rules): a real ACL user with exactly `rules`, used by the store; deleted after."""
    names = []

    def make(rules):
        name, password = f"flowr_acl_{secrets.token_hex(4)}", secrets.token_hex(12)
        admin_redis.execute_command("ACL", "SETUSER", name, "reset", "on", f">{password}",
                                    *rules.split())
        names.append(name)
        settings.FLOWS_STATE_STORE = "flowr.statestore.redis_store"
        settings.FLOWS_REDIS_STATE_STORE_HOST, settings.FLOWS_REDIS_STATE_STORE_PORT = (
            REDIS_HOST, REDIS_PORT)
        settings.FLOWS_REDIS_STATE_STORE_DB = REDIS_TEST_DB
        settings.FLOWS_REDIS_STATE_STORE_USER = name
        settings.FLOWS_REDIS_STATE_STORE_PASSWORD = password
        settings.FLOWS_TASK_IDLE_TIMEOUT = 60
        return name

    yield make
    for name in names:
        admin_redis.execute_command("ACL", "DELUSER", name)


def without(command):
    return ACL_RULES.replace(f" +{command}", "")


# What the store does with each command, so that a missing one is noticed.
def _get(store, settings):
    settings.FLOWS_TASK_IDLE_TIMEOUT = 0  # GET is used when states never expire
    store.get_state("t1")


USES = {
    "get": _get,
    "getex": lambda store, settings: store.get_state("t1"),
    "set": lambda store, settings: store.put_state("t1", {"a": 1}),
    "expire": lambda store, settings: store.touch_state("t1"),
    "del": lambda store, settings: store.delete_state("t1"),
    "ping": lambda store, settings: store.health(),
    "select": lambda store, settings: store.get_state("t1"),
}


def test_the_documented_acl_is_enough_for_every_operation(acl_user, admin_redis, client,
                                                          settings):
    acl_user(ACL_RULES)
    store = get_store()
    store.put_state("t1", {"a": 1})
    assert store.get_state("t1") == {"a": 1}
    store.touch_state("t1")
    settings.FLOWS_TASK_IDLE_TIMEOUT = 0
    assert store.get_state("t1") == {"a": 1}
    store.delete_state("t1")
    with pytest.raises(StateNotFound):
        store.get_state("t1")
    assert client.get("/healthz").json()["state_store"] == "ok"
    assert admin_redis.keys("*") == []  # the health check leaves nothing behind


def test_every_command_of_the_list_is_used():
    assert set(USES) == set(REQUIRED_COMMANDS)
    assert ACL_RULES.startswith(f"~{KEY_PREFIX}* ")


@pytest.mark.parametrize("command", REQUIRED_COMMANDS)
def test_a_missing_permission_is_a_clear_error_naming_the_acl(acl_user, admin_redis, client,
                                                               settings, command):
    admin_redis.set(KEY_PREFIX + "t1", '{"a": 1}', ex=60)
    name = acl_user(without(command))
    store = get_store()
    with pytest.raises(StoreUnavailable) as refused:
        USES[command](store, settings)
    message = str(refused.value)
    assert f"as user '{name}'" in message
    assert f"no permissions to run the '{command}' command" in message
    assert f"ACL SETUSER {name} {ACL_RULES}" in message
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    health = client.get("/healthz")
    assert health.status_code == 503  # a load balancer notices, never a silent loss
    assert command.upper() in health.json()["state_store"].upper()
    assert ACL_RULES in health.json()["state_store"]
    if command != "set":
        assert admin_redis.get(KEY_PREFIX + "t1") == b'{"a": 1}'  # nothing lost


def test_keys_outside_the_prefix_are_refused(acl_user, settings):
    import redis

    name = acl_user(ACL_RULES)
    conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_TEST_DB, username=name,
                       password=settings.FLOWS_REDIS_STATE_STORE_PASSWORD, protocol=2)
    with pytest.raises(redis.exceptions.NoPermissionError):
        conn.set("another:key", "x")
    conn.close()


def test_readme_gives_the_same_acl_line():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        text = readme.read()
    assert f"ACL SETUSER flowr reset on >PASSWORD {ACL_RULES}" in text


# A step needs GETEX (a hook reads the state), SET (a hook changed it) or EXPIRE (it did
# not: the idle timeout restarts); without it the step is refused and nothing changes.
STEP_NEEDS = [("getex", "Open"), ("set", "Open"), ("expire", "Waiting on customer")]


@pytest.mark.parametrize("command, to", STEP_NEEDS)
def test_a_step_without_a_permission_it_needs_is_refused_and_changes_nothing(
        acl_user, demo_machines, command, to):
    from flowr import engine
    from flowr.models import Instance
    from flowr.statestore import TaskStateUnavailable

    acl_user(ACL_RULES)
    ticket = demo_machines["support"].start()
    if to != "Open":
        engine.step(ticket, to="Open")
    before = Instance.objects.get(pk=ticket.pk)
    name = acl_user(without(command))
    with pytest.raises(TaskStateUnavailable) as refused:
        engine.step(Instance.objects.get(pk=ticket.pk), to=to)
    assert "Nothing was changed" in str(refused.value)
    assert f"ACL SETUSER {name} {ACL_RULES}" in str(refused.value)
    after = Instance.objects.get(pk=ticket.pk)
    assert (after.state_key, after.step_count, after.last_seq, after.task_state_version) == (
        before.state_key, before.step_count, before.last_seq, before.task_state_version)
