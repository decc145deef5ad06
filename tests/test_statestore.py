"""Task-state stores: Django models and the real Redis (DB 9), settings, failures, rollback."""
import json
import secrets
import time
from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import DatabaseError, connections
from django.utils import timezone

from flowr import builder, engine
from flowr.checks import check_state_store, check_store_settings
from flowr.exceptions import FlowrError, HookFailed, InstanceNotActive, StepError
from flowr.models import HistoryEntry, Instance, TaskStateRecord
from flowr.rules import Rule, RuleSet, register
from flowr.statestore import django_store
from flowr.statestore import (
    StateNotFound, StateNotSerialisable, StoreUnavailable, TaskStateUnavailable, get_store,
)
from flowr.statestore import redis_store
from flowr.sync import sync_rule_sets
from flowr.taskstate import task_id
from tests.conftest import REDIS_HOST, REDIS_PORT, REDIS_TEST_DB, use_redis

DJANGO_STORE = "flowr.statestore.django_store"
STORES = ["django", pytest.param("redis", marks=pytest.mark.redis)]


# -- fixtures ------------------------------------------------------------------------

@pytest.fixture(params=STORES)
def store(request, settings):
    """Each built-in store in turn, configured through FLOWS_STATE_STORE."""
    request.getfixturevalue("db")
    if request.param == "redis":
        request.getfixturevalue("redis_db")
    else:
        settings.FLOWS_STATE_STORE = DJANGO_STORE
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    return get_store()


def current_id(instance):
    """The store's task id of the instance's current task-state version (as committed)."""
    return task_id(instance.pk, Instance.objects.get(pk=instance.pk).task_state_version)


def kind(store):
    return "redis" if isinstance(store, redis_store.StateStore) else "django"


def age(store, task_id, seconds):
    """Pretend `task_id` was last touched `seconds` earlier than it was."""
    if kind(store) == "django":
        record = TaskStateRecord.objects.get(task_id=task_id)
        TaskStateRecord.objects.filter(task_id=task_id).update(
            updated_at=record.updated_at - timedelta(seconds=seconds))
    else:
        conn = redis_store.client()
        left = conn.pttl(redis_store.KEY_PREFIX + task_id) - int(seconds * 1000)
        assert left > 0, "age() can only shorten a Redis TTL; sleep to expire"
        conn.pexpire(redis_store.KEY_PREFIX + task_id, left)


def remaining(store, task_id):
    """Seconds before `task_id` expires, as the store sees it."""
    if kind(store) == "django":
        # The row lives while it or its instance was touched within the timeout.
        touched = TaskStateRecord.objects.get(task_id=task_id).updated_at
        pk = django_store._instance_pk(task_id)
        instance = pk and Instance.objects.filter(pk=pk).first()
        if instance:
            touched = max(touched, instance.last_activity)
        return (touched + timedelta(seconds=60) - timezone.now()).total_seconds()
    return redis_store.client().pttl(redis_store.KEY_PREFIX + task_id) / 1000


@pytest.fixture
def acl_user(redis_db):
    """A real Redis ACL user with every permission, removed afterwards."""
    name, password = f"flowr_test_{secrets.token_hex(4)}", secrets.token_hex(8)
    redis_db.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~*", "+@all")
    try:
        yield name, password
    finally:
        redis_db.execute_command("ACL", "DELUSER", name)


@pytest.fixture
def read_only_user(redis_db):
    """A Redis ACL user that may read (GETEX) but not write (SET): writes get NOPERM."""
    name, password = f"flowr_test_{secrets.token_hex(4)}", secrets.token_hex(8)
    redis_db.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~*", "+@all",
                             "-set")
    try:
        yield name, password
    finally:
        redis_db.execute_command("ACL", "DELUSER", name)


def support_instance(demo_machines):
    """A new support ticket at 'New'; stepping it enters 'Open', whose hook writes state."""
    return demo_machines["support"].start()


def assert_untouched(instance, state_key, step_count=0):
    """Position and history as they were (`instance` is the object before the attempt)."""
    fresh = Instance.objects.get(pk=instance.pk)
    assert (fresh.state_key, fresh.step_count) == (state_key, step_count)
    assert (fresh.last_seq, fresh.task_state_version) == (instance.last_seq,
                                                          instance.task_state_version)
    assert HistoryEntry.objects.filter(instance=instance).count() == fresh.last_seq + 1


# -- both stores: the store contract -----------------------------------------------------

def test_round_trip(store):
    state = {"name": "Ada", "n": 3, "tags": ["a", "b"], "nested": {"ok": True, "x": None}}
    store.put_state("t1", state)
    assert store.get_state("t1") == state
    store.put_state("t1", {"n": 4})
    assert store.get_state("t1") == {"n": 4}


def test_missing_key_raises_state_not_found(store):
    with pytest.raises(StateNotFound, match="No task state for task nope"):
        store.get_state("nope")


def test_delete(store):
    store.put_state("t1", {"a": 1})
    store.put_state("t2", {"b": 2})
    store.delete_state("t1")
    store.delete_state("never-stored")  # no error
    with pytest.raises(StateNotFound):
        store.get_state("t1")
    assert store.get_state("t2") == {"b": 2}


def test_state_idle_past_the_timeout_is_never_returned(store, settings):
    settings.FLOWS_TASK_IDLE_TIMEOUT = 1
    store.put_state("t1", {"a": 1})
    store.put_state("t2", {"b": 2})
    if kind(store) == "redis":
        time.sleep(1.1)  # the real TTL of 1 s
        store.put_state("t2", {"b": 2})
    else:
        age(store, "t1", 1.5)
    with pytest.raises(StateNotFound):
        store.get_state("t1")
    assert store.get_state("t2") == {"b": 2}


def test_reading_refreshes_the_idle_timeout(store):
    store.put_state("t1", {"a": 1})
    age(store, "t1", 59.7)  # 0.3 s left
    assert store.get_state("t1") == {"a": 1}
    assert remaining(store, "t1") > 55
    if kind(store) == "redis":
        time.sleep(0.4)  # without the refresh the key would be gone now
    else:
        age(store, "t1", 30)  # 89.7 s since the put, 30 since the read
    assert store.get_state("t1") == {"a": 1}


@pytest.mark.django_db
def test_django_store_without_update_returning_behaves_the_same(settings, monkeypatch):
    from flowr.statestore import django_store

    monkeypatch.setattr(django_store, "_update_returning", lambda connection: False)
    settings.FLOWS_STATE_STORE, settings.FLOWS_TASK_IDLE_TIMEOUT = DJANGO_STORE, 60
    store = get_store()
    store.put_state("t1", {"a": [1, 2]})
    age(store, "t1", 59.7)
    assert store.get_state("t1") == {"a": [1, 2]}
    assert remaining(store, "t1") > 55
    age(store, "t1", 61)
    with pytest.raises(StateNotFound):
        store.get_state("t1")


@pytest.mark.parametrize("bad", [
    {"tags": {"a", "b"}},
    {"when": datetime(2026, 1, 1)},
    {"ratio": float("nan")},
    {"nested": [{"x": float("inf")}]},
    ["not", "a", "dict"],
], ids=["set", "datetime", "nan", "inf", "list"])
def test_non_json_values_are_refused_at_write_time(store, bad):
    store.put_state("t1", {"ok": 1})
    with pytest.raises(StateNotSerialisable, match="(JSON|must be a dict)"):
        store.put_state("t1", bad)
    assert store.get_state("t1") == {"ok": 1}


def test_a_step_restarts_the_idle_timeout_of_unchanged_state(store, example_machine):
    instance = example_machine.start()
    engine.save_task_state(instance, {"kept": True})
    age(store, current_id(instance), 59.5)
    Instance.objects.get(pk=instance.pk).step()  # A→C: no hook touches the task state
    assert remaining(store, current_id(instance)) > 55
    assert Instance.objects.get(pk=instance.pk).task_state == {"kept": True}


def test_idle_instance_shows_expired_refuses_to_step_and_loses_state(store, settings,
                                                                     example_machine):
    settings.FLOWS_TASK_IDLE_TIMEOUT = 1
    instance = example_machine.start()
    engine.save_task_state(instance, {"a": 1})
    Instance.objects.filter(pk=instance.pk).update(
        last_activity=timezone.now() - timedelta(seconds=5))
    if kind(store) == "redis":
        time.sleep(1.1)
    else:
        age(store, current_id(instance), 5)
    fresh = Instance.objects.get(pk=instance.pk)
    assert engine.effective_status(fresh) == Instance.EXPIRED
    assert fresh.task_state == {}
    with pytest.raises(InstanceNotActive, match="has expired .*; it cannot step"):
        fresh.step()
    with pytest.raises(InstanceNotActive, match="it cannot change its task state"):
        engine.save_task_state(fresh, {"revived": True})
    assert engine.effective_status(Instance.objects.get(pk=instance.pk)) == Instance.EXPIRED


# -- choosing the store: FLOWS_STATE_STORE -------------------------------------------------

def test_custom_store_module_works_with_the_engine(settings, demo_machines):
    from tests import custom_store

    settings.FLOWS_STATE_STORE = "tests.custom_store"
    custom_store.DATA.clear()
    instance = support_instance(demo_machines)
    instance.step()  # New → Open: on_enter counts times_opened
    assert isinstance(get_store(), custom_store.StateStore)
    assert json.loads(custom_store.DATA[current_id(instance)]) == {"times_opened": 1}
    instance.step(to="Waiting on customer")
    instance.step()  # Waiting → Open: on_leave confirms, on_enter counts again
    assert Instance.objects.get(pk=instance.pk).task_state == {
        "times_opened": 2, "customer_confirmed": True}


@pytest.mark.parametrize("module, message", [
    ("tests.bad_store", "has no class StateStore extending "
                        "flowr.statestore.base.BaseStateStore"),
    ("tests.no_such_store", "cannot be imported"),
])
def test_a_module_without_a_proper_state_store_is_a_configuration_error(settings, module,
                                                                        message):
    settings.FLOWS_STATE_STORE = module
    with pytest.raises(ImproperlyConfigured, match=message):
        get_store()
    errors = check_state_store(None)
    assert [e.id for e in errors] == ["flowr.E001"]
    assert module in errors[0].msg
    with pytest.raises(SystemCheckError, match="flowr.E001"):
        call_command("check")


def test_bad_timeout_setting_is_a_check_error(settings):
    settings.FLOWS_TASK_IDLE_TIMEOUT = "soon"
    errors = check_store_settings(None)
    assert [e.id for e in errors] == ["flowr.E002"]
    assert "FLOWS_TASK_IDLE_TIMEOUT = 'soon'" in errors[0].msg


def test_default_settings_pass_the_checks():
    assert check_state_store(None) == [] and check_store_settings(None) == []


# -- Redis specifics ---------------------------------------------------------------------

@pytest.fixture
def sent_commands(monkeypatch):
    """Records the commands redis-py sends (one entry per command = per round trip)."""
    from redis.connection import AbstractConnection

    sent = []
    original = AbstractConnection.send_command

    def record(self, *args, **kwargs):
        sent.append([a.decode() if isinstance(a, bytes) else str(a) for a in args])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_command", record)
    return sent


@pytest.mark.redis
def test_redis_one_round_trip_per_operation_and_no_scans(redis_db, settings, sent_commands):
    settings.FLOWS_TASK_IDLE_TIMEOUT = 120
    store = get_store()
    store.health()  # connects (handshake) before we count
    sent_commands.clear()
    store.put_state("t1", {"a": 1})
    store.get_state("t1")
    store.touch_state("t1")
    store.delete_state("t1")
    key = redis_store.KEY_PREFIX + "t1"
    assert sent_commands == [["SET", key, '{"a":1}', "EX", "120"], ["GETEX", key, "EX", "120"],
                             ["EXPIRE", key, "120"], ["DEL", key]]


@pytest.mark.redis
def test_redis_without_timeout_keeps_state_forever(redis_db, settings):
    settings.FLOWS_TASK_IDLE_TIMEOUT = 0
    get_store().put_state("t1", {"a": 1})
    assert get_store().get_state("t1") == {"a": 1}
    assert redis_db.ttl(redis_store.KEY_PREFIX + "t1") == -1  # no expiry


@pytest.mark.redis
def test_redis_uses_one_connection_pool_per_process(redis_db, settings):
    store = get_store()
    for i in range(30):
        store.put_state(f"t{i}", {"i": i})
        assert get_store().get_state(f"t{i}") == {"i": i}
    pool = redis_store.client().connection_pool
    assert redis_store.client() is redis_store.client()
    assert pool._created_connections == 1
    settings.FLOWS_REDIS_STATE_STORE_DB = REDIS_TEST_DB - 1  # other settings: other pool
    assert redis_store.client().connection_pool is not pool
    assert redis_store.client().connection_pool.connection_kwargs["db"] == REDIS_TEST_DB - 1


@pytest.mark.redis
def test_redis_acl_user_and_password(acl_user, settings):
    name, password = acl_user
    use_redis(settings, user=name, password=password)
    store = get_store()
    store.put_state("t1", {"who": name})
    assert store.get_state("t1") == {"who": name}
    assert redis_store.client().acl_whoami() == name
    store.health()


@pytest.mark.redis
def test_redis_wrong_password_fails_clearly(acl_user, settings):
    name, password = acl_user
    use_redis(settings, user=name, password="wrong-" + password)
    store = get_store()
    for call in (lambda: store.get_state("t1"), lambda: store.put_state("t1", {}),
                 store.health):
        with pytest.raises(StoreUnavailable) as caught:
            call()
        message = str(caught.value)
        assert f"Redis task-state store at {REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}" in message
        assert f"as user '{name}' refused the credentials" in message
        assert "FLOWS_REDIS_STATE_STORE_PASSWORD" in message
        assert password not in message


@pytest.mark.redis
def test_redis_missing_permission_fails_clearly(read_only_user, settings):
    use_redis(settings, user=read_only_user[0], password=read_only_user[1])
    with pytest.raises(StoreUnavailable, match="refused a command .*no permissions to run the 'set' command.*Check the ACL"):
        get_store().put_state("t1", {"a": 1})


@pytest.fixture
def redis_down(db, redis_url, settings):
    """The Redis store pointed at a closed port."""
    use_redis(settings, port=1)
    return get_store()


@pytest.mark.redis
def test_redis_down_fails_fast_with_a_clear_error(redis_down):
    for call in (lambda: redis_down.get_state("t1"), lambda: redis_down.put_state("t1", {}),
                 lambda: redis_down.delete_state("t1"), redis_down.health):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"at {REDIS_HOST}:1/{REDIS_TEST_DB} cannot "
                                                   "be reached .*Check that Redis is running"):
            call()
        assert time.monotonic() - started < 1.5


@pytest.mark.redis
def test_healthz_reports_503_naming_the_store_when_redis_is_down(redis_down, client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"] == "ok"
    assert f"Redis task-state store at {REDIS_HOST}:1/{REDIS_TEST_DB}" in body["state_store"]


@pytest.mark.redis
def test_healthz_is_ok_with_redis_up(redis_db, db, client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["state_store"] == "ok"


@pytest.mark.redis
def test_step_with_redis_down_raises_a_clear_error_and_changes_nothing(demo_machines,
                                                                       redis_down):
    # The demo loads (with its instances' task state) before Redis goes down.
    instance = support_instance(demo_machines)
    root = instance.state_key
    with pytest.raises(TaskStateUnavailable) as caught:
        instance.step()  # Open.on_enter counts in the task state, which must be written
    assert isinstance(caught.value, StepError) and isinstance(caught.value, FlowrError)
    message = str(caught.value)
    assert f"task state of instance {instance.pk} could not be saved" in message
    assert f"{REDIS_HOST}:1/{REDIS_TEST_DB}" in message
    assert "keeps its position, history and task state" in message
    assert_untouched(instance, root)


@pytest.mark.redis
def test_step_whose_task_state_write_is_refused_changes_nothing(read_only_user, settings,
                                                                redis_db, demo_machines):
    instance = support_instance(demo_machines)
    get_store().put_state(str(instance.pk), {"times_opened": 5})
    use_redis(settings, user=read_only_user[0], password=read_only_user[1])
    with pytest.raises(TaskStateUnavailable, match="could not be saved: .*no permissions to run the 'set' command"):
        Instance.objects.get(pk=instance.pk).step()  # reads fine, the write is refused
    assert_untouched(instance, instance.state_key)
    assert json.loads(redis_db.get(redis_store.KEY_PREFIX + str(instance.pk))) == {
        "times_opened": 5}


# -- rollback of task state (both stores; again on PostgreSQL) ------------------------------

@pytest.fixture
def rollback_machine(db):
    """A throwaway rule set Start → Write (writes 'new') | Boom (writes 'new', then raises)."""
    class Start(Rule):
        children = ["Write", "Boom"]
        multiple_paths = True

    class Write(Rule):
        def on_enter(self, instance):
            instance.task_state["note"] = "new"

    class Boom(Rule):
        def on_enter(self, instance):
            instance.task_state["note"] = "new"
            raise RuntimeError("the hook broke")

    register(RuleSet("statestore_rollback", root=Start, rules=[Start, Write, Boom]))
    sync_rule_sets()
    machine = builder.create_machine("statestore_rollback", "Rollback")
    builder.add_child(machine.root_state, "statestore_rollback.Write")
    builder.add_child(machine.root_state, "statestore_rollback.Boom")
    machine.publish()
    return machine


def started_with_old_state(machine):
    instance = machine.start()
    engine.save_task_state(instance, {"note": "old"})
    return Instance.objects.get(pk=instance.pk)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_failing_hook_leaves_the_old_task_state(store, rollback_machine):
    instance = started_with_old_state(rollback_machine)
    with pytest.raises(HookFailed, match="the hook broke"):
        instance.step(to="Boom")
    assert store.get_state(current_id(instance)) == {"note": "old"}
    assert Instance.objects.get(pk=instance.pk).task_state == {"note": "old"}
    assert_untouched(instance, instance.state_key)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_write_whose_commit_fails_is_never_read(store, rollback_machine, monkeypatch):
    instance = started_with_old_state(rollback_machine)
    connection = connections["default"]
    real_commit = connection.commit
    orphan = task_id(instance.pk, instance.last_seq + 1)  # the id the step writes to
    writes = []

    def failing_commit():
        writes.append(store.get_state(orphan))  # what the step wrote, before COMMIT
        raise DatabaseError("COMMIT failed (simulated)")

    monkeypatch.setattr(connection, "commit", failing_commit)
    with pytest.raises(DatabaseError, match="simulated"):
        instance.step(to="Write")
    monkeypatch.setattr(connection, "commit", real_commit)
    assert writes == [{"note": "new"}]  # the write happened under a new id
    # The committed row still names the old version: the new one is never read.
    assert Instance.objects.get(pk=instance.pk).task_state == {"note": "old"}
    assert store.get_state(current_id(instance)) == {"note": "old"}
    assert_untouched(instance, instance.state_key)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_successful_step_writes_the_new_task_state(store, rollback_machine):
    instance = started_with_old_state(rollback_machine)
    instance.step(to="Write")
    assert store.get_state(current_id(instance)) == {"note": "new"}
    assert Instance.objects.get(pk=instance.pk).state_name == "Write"


def test_django_store_health_names_the_store_when_its_table_is_missing(db, settings,
                                                                       monkeypatch):
    from django.db import transaction

    settings.FLOWS_STATE_STORE = DJANGO_STORE
    get_store().health()  # fine with the table in place
    monkeypatch.setattr(TaskStateRecord._meta, "db_table", "flowr_no_such_table")
    with pytest.raises(StoreUnavailable, match="Django task-state store .*run migrate"):
        with transaction.atomic():  # a savepoint keeps PostgreSQL's test transaction usable
            get_store().health()


def test_django_store_row_lives_while_its_instance_steps(settings, example_machine, capsys):
    """Stepping refreshes the idle timeout through last_activity, without a store query."""
    from django.core.management import call_command

    settings.FLOWS_STATE_STORE = DJANGO_STORE
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    instance = example_machine.start()
    engine.save_task_state(instance, {"kept": True})
    idle = example_machine.start()
    engine.save_task_state(idle, {"idle": True})
    long_ago = timezone.now() - timedelta(seconds=120)
    TaskStateRecord.objects.update(updated_at=long_ago)
    Instance.objects.filter(pk=idle.pk).update(last_activity=long_ago)
    Instance.objects.get(pk=instance.pk).step()  # fresh last_activity for this one only
    call_command("cleanupflows")
    assert "Removed 1 expired" in capsys.readouterr().out
    assert list(TaskStateRecord.objects.values_list("task_id", flat=True)) == [
        current_id(instance)]
    assert Instance.objects.get(pk=instance.pk).task_state == {"kept": True}
