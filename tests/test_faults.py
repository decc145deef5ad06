"""Task state stays atomic with the step when Redis misbehaves: real faults injected by a
TCP proxy in front of the real Redis (tests/faultproxy.py), and a process killed between
the Redis write and COMMIT. After every fault the task state read through Flowr equals
what the history explains, and the position equals the replay of the history.

The instances are Support tickets (the demo rules): entering Open counts
`times_opened`, leaving Waiting sets `customer_confirmed`; so the history alone says
what the task state must be.
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from django.db import connection

from flowr import engine, taskstate
from flowr.models import HistoryEntry, Instance
from flowr.statestore import StoreUnavailable, TaskStateUnavailable
from flowr.statestore.redis_store import KEY_PREFIX
from tests.conftest import REDIS_HOST, REDIS_PORT, REDIS_TEST_DB
from tests.faultproxy import FaultProxy, unreachable

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CYCLE = ["Open", "Waiting on customer"] * 2  # two SETs (entering Open), two EXPIREs


# -- set-up ----------------------------------------------------------------------------

@pytest.fixture
def direct_redis(redis_url):
    """Redis itself (not through the proxy), its test DB flushed before and after."""
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def proxy(direct_redis, settings):
    """The Redis store behind a fault proxy, with short timeouts (a held reply fails fast)."""
    with FaultProxy(target=(REDIS_HOST, REDIS_PORT)) as fault_proxy:
        settings.FLOWS_STATE_STORE = "flowr.statestore.redis_store"
        settings.FLOWS_REDIS_STATE_STORE_HOST = REDIS_HOST
        settings.FLOWS_REDIS_STATE_STORE_PORT = fault_proxy.port
        settings.FLOWS_REDIS_STATE_STORE_DB = REDIS_TEST_DB
        settings.FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT = 0.2
        settings.FLOWS_TASK_IDLE_TIMEOUT = 600
        yield fault_proxy


def explained(entries):
    """The Support ticket's task state that the history entries explain."""
    state = {}
    opened = sum(1 for e in entries if e.to_key == "open" and e.kind not in HistoryEntry.NOTES)
    if opened:
        state["times_opened"] = opened
    if any(e.from_key == "waiting-on-customer" for e in entries):
        state["customer_confirmed"] = True
    return state


def assert_consistent(instance):
    """Read back through Flowr (a fresh object): history explains state and position."""
    row = Instance.objects.get(pk=instance.pk)
    entries = list(row.history.order_by("seq"))
    assert engine.replay(entries) == engine.position_of(row)
    assert row.task_state_version == entries[-1].task_state_version
    assert row.task_state == explained(entries), f"history: {[e.to_key for e in entries]}"
    return row


def step_during(proxy, instance, to, fault):
    """Arm `fault`, step, then heal the proxy; True when the step committed."""
    fault(proxy)
    try:
        engine.step(Instance.objects.get(pk=instance.pk), to=to)
        committed = True
    except TaskStateUnavailable as exc:
        assert "Nothing was changed" in str(exc)
        committed = False
    finally:
        proxy.disarm()
        proxy.release()
    return committed


FAULTS = {
    "SET reply lost, connection closed": lambda p: p.lose_reply("SET", then="close"),
    "SET reply lost, connection reset": lambda p: p.lose_reply("SET", then="reset"),
    "SET reply held past the socket timeout": lambda p: p.lose_reply("SET", then="hold"),
    "connection reset instead of the SET": lambda p: p.reset_before("SET"),
    "every reply held (a stalled Redis)": lambda p: p.hold_replies(),
    "EXPIRE reply held (unchanged task state)": lambda p: p.lose_reply("EXPIRE", then="hold"),
    "GETEX reply held (a hook reads the state)": lambda p: p.lose_reply("GETEX", then="hold"),
    "every connection reset": lambda p: p.reset_all(),
}


# -- faults during steps -----------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_step_during_a_redis_fault_keeps_task_state_and_history_in_agreement(
        proxy, demo_machines, fault):
    ticket = demo_machines["support"].start()
    fired = 0
    for to in CYCLE * 2:
        row = Instance.objects.get(pk=ticket.pk)
        step_during(proxy, ticket, to, FAULTS[fault])
        fired += proxy.fired.is_set()
        after = assert_consistent(ticket)
        if after.step_count == row.step_count:  # refused: retry once the fault is gone
            engine.step(after, to=to)
            assert_consistent(ticket)
    assert fired, f"the fault '{fault}' never happened"
    assert Instance.objects.get(pk=ticket.pk).state_name == CYCLE[-1]


@pytest.mark.django_db(transaction=True)
def test_a_set_that_reached_redis_before_a_failed_commit_is_never_read(proxy, direct_redis,
                                                                       demo_machines):
    ticket = demo_machines["support"].start()
    engine.step(ticket, to="Open")
    engine.step(Instance.objects.get(pk=ticket.pk), to="Waiting on customer")
    before = assert_consistent(ticket)
    assert not step_during(proxy, ticket, "Open", FAULTS["SET reply held past the socket "
                                                         "timeout"])
    orphan = KEY_PREFIX + taskstate.task_id(ticket.pk, before.last_seq + 1)
    assert b'"times_opened":2' in direct_redis.get(orphan)  # the write reached Redis …
    row = assert_consistent(ticket)  # … and is not read: the row never named it
    assert (row.task_state, row.step_count) == (before.task_state, before.step_count)
    assert 0 < direct_redis.ttl(orphan) <= 600  # left to expire by itself


@pytest.mark.django_db(transaction=True)
def test_a_stalled_redis_gives_a_clear_error_well_under_a_second(proxy, settings,
                                                                 demo_machines):
    del settings.FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT  # the defaults (flowr.config)
    ticket = demo_machines["support"].start()
    proxy.hold_replies()
    started = time.monotonic()
    with pytest.raises(TaskStateUnavailable) as refused:
        engine.step(Instance.objects.get(pk=ticket.pk), to="Open")
    elapsed = time.monotonic() - started
    proxy.release()
    assert "did not answer within 0.5 s (FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT)" in \
        str(refused.value)
    assert "Nothing was changed" in str(refused.value)
    assert elapsed < 1.5, f"a stalled Redis held the step for {elapsed:.2f} s"  # not 5 s
    assert assert_consistent(ticket).state_name == "New"


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_redis_fails_within_the_connect_timeout(settings, demo_machines):
    ticket = demo_machines["support"].start()
    with unreachable() as (host, port):
        settings.FLOWS_STATE_STORE = "flowr.statestore.redis_store"
        settings.FLOWS_REDIS_STATE_STORE_HOST, settings.FLOWS_REDIS_STATE_STORE_PORT = host, port
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="could not be connected to within 0.5 s "
                                                   r"\(FLOWS_REDIS_STATE_STORE_CONNECT_TIMEOUT"):
            engine.step(Instance.objects.get(pk=ticket.pk), to="Open")
    assert time.monotonic() - started < 1.5  # one connect timeout, not retried
    row = Instance.objects.get(pk=ticket.pk)
    assert (row.state_name, row.last_seq) == ("New", 0)


# -- a process killed between the Redis write and COMMIT ----------------------------------

def child_database(tmp_path):
    """Environment giving a child process this test's database (committed data)."""
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        url = (f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:"
               f"{settings_dict['PORT']}/{settings_dict['NAME']}")
        return {"DATABASE_URL": url}, None
    # pytest-django's SQLite test database lives in memory: copy it to a file for the
    # child, and copy the file back afterwards to read what the child committed.
    path = str(tmp_path / "child.sqlite3")
    connection.ensure_connection()
    with sqlite3.connect(path) as target:
        connection.connection.backup(target)
    return {"FLOWR_SQLITE_PATH": path, "DATABASE_URL": ""}, path


def read_back(path):
    if path is not None:
        with sqlite3.connect(path) as source:
            source.backup(connection.connection)


def spawn_step(proxy, database_env, instance, to):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({key: value for key, value in database_env.items() if value})
    env.update({
        "DJANGO_SETTINGS_MODULE": "flowr_site.settings",
        "FLOWS_STATE_STORE": "flowr.statestore.redis_store",
        "FLOWS_REDIS_STATE_STORE_HOST": REDIS_HOST,
        "FLOWS_REDIS_STATE_STORE_PORT": str(proxy.port),
        "FLOWS_REDIS_STATE_STORE_DB": str(REDIS_TEST_DB),
        "FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT": "60",  # it waits until it is killed
        "FLOWS_TASK_IDLE_TIMEOUT": "600",
    })
    return subprocess.Popen([sys.executable, "-m", "tests.fault_child", "step",
                             str(instance.pk), to], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.django_db(transaction=True)
def test_a_process_killed_between_the_redis_write_and_commit(proxy, direct_redis,
                                                             demo_machines, tmp_path):
    ticket = demo_machines["support"].start()
    engine.step(ticket, to="Open")
    engine.step(Instance.objects.get(pk=ticket.pk), to="Waiting on customer")
    before = assert_consistent(ticket)
    database_env, sqlite_path = child_database(tmp_path)
    proxy.lose_reply("SET", then="hold")  # the SET reaches Redis; its reply never returns
    child = spawn_step(proxy, database_env, ticket, "Open")
    try:
        fired = proxy.fired.wait(60)
        assert fired, f"the child never sent its SET: {child.communicate(timeout=5)}"
        os.kill(child.pid, signal.SIGKILL)  # between the Redis write and COMMIT
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    read_back(sqlite_path)
    orphan = KEY_PREFIX + taskstate.task_id(ticket.pk, before.last_seq + 1)
    assert direct_redis.get(orphan) is not None  # the dead process's write is in Redis
    row = assert_consistent(ticket)  # never read: nothing of the killed step is visible
    assert (row.state_name, row.step_count) == ("Waiting on customer", before.step_count)
    engine.step(row, to="Open")  # the instance goes on normally, over the orphan's id
    assert assert_consistent(ticket).task_state == {"times_opened": 2,
                                                   "customer_confirmed": True}
