"""Real `manage.py db_worker` processes fire timers exactly once, also after a SIGKILL.

The PostgreSQL tests let the worker processes connect to the test database by its name
(the test commits its data: transaction=True); they run in the PostgreSQL pass of
make test. The SQLite test migrates a database file of its own for them.
"""
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from flowr.models import HistoryEntry, Instance
from tests.timer_support import (
    ROOT, queued, start_worker, stop_worker, timed_example, wait_for, worker_env,
    worker_started,
)

FAST = ("--interval", "0.2", "--no-startup-delay")  # after the Procfile's options


def start_instances(machine, count):
    """`count` instances at A, their timers due in one second (all at the same moment)."""
    with transaction.atomic():
        ids = [machine.start().pk for _ in range(count)]
    return ids


def make_due(at):
    Instance.objects.update(due_at=at)
    return queued("fire_timeout").update(run_after=at)


def timeout_counts(ids):
    rows = (HistoryEntry.objects.filter(instance_id__in=ids, kind=HistoryEntry.TIMEOUT)
            .values_list("instance_id").annotate(n=Count("pk")))
    return dict(rows)


def all_stepped(ids):
    return Instance.objects.filter(pk__in=ids, state_name="B").count() == len(ids)


def assert_each_stepped_once(ids):
    counts = timeout_counts(ids)
    assert sorted(set(counts.values())) == [1], "some instances stepped twice or never"
    assert len(counts) == len(ids)
    assert Instance.objects.filter(pk__in=ids, step_count=1, state_name="B",
                                   status=Instance.FINISHED).count() == len(ids)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_fire_1000_due_timers_exactly_once(postgres_only, tmp_path):
    machine = timed_example(due_after=3600)
    ids = start_instances(machine, 1000)
    env = worker_env()
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    workers = [start_worker(f"w{n}", env, log, *FAST) for n, log in enumerate(logs, 1)]
    try:
        assert wait_for(lambda: all(map(worker_started, logs)), timeout=60), "no workers"
        make_due(timezone.now() + timedelta(seconds=0.5))
        assert wait_for(lambda: all_stepped(ids), timeout=180), "not every timer fired"
        time.sleep(1)  # a duplicate would show up now
    finally:
        for worker in workers:
            stop_worker(worker)
    assert_each_stepped_once(ids)
    rows = queued("fire_timeout", status=None)
    assert {r.return_value["result"] for r in rows} == {"fired"}
    by_worker = rows.values_list("worker_ids").annotate(n=Count("pk"))
    assert {tuple(w) for w, _ in by_worker} == {("w1",), ("w2",)}  # both did some
    assert not any("Traceback" in log.read_text() for log in logs)


def _blocked_on_a_row_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_step_loses_no_timer(postgres_only, tmp_path):
    machine = timed_example(due_after=3600)
    ids = start_instances(machine, 200)
    make_due(timezone.now() - timedelta(seconds=1))
    victim_task = list(queued("fire_timeout"))[60]
    victim = victim_task.args_kwargs["args"][0]
    env = worker_env(FLOWR_TIMER_LEASE=2, FLOWR_TIMER_SWEEP_INTERVAL=1)
    with transaction.atomic():
        # Hold the victim's row lock: the worker blocks inside that timed step.
        Instance.objects.select_for_update().get(pk=victim)
        first = start_worker("first", env, tmp_path / "first.log", *FAST)
        try:
            claimed = wait_for(lambda: queued("fire_timeout", status="RUNNING")
                               .filter(pk=victim_task.pk).exists(), timeout=120)
            assert claimed, "the worker never reached the victim's timer"
            assert wait_for(_blocked_on_a_row_lock, timeout=30)
        finally:
            stop_worker(first, signal.SIGKILL)  # killed in the middle of the step
    assert Instance.objects.get(pk=victim).state_name == "A"
    assert queued("fire_timeout", status="RUNNING").get().pk == victim_task.pk
    second = start_worker("second", env, tmp_path / "second.log", *FAST)
    try:
        assert wait_for(lambda: all_stepped(ids), timeout=120), "a timer was lost"
        time.sleep(1)
    finally:
        stop_worker(second)
    assert_each_stepped_once(ids)
    victim_task.refresh_from_db()
    assert victim_task.worker_ids == ["first", "second"]
    assert victim_task.return_value["result"] == "fired"


SQLITE_SETUP = """
from datetime import timedelta
from django.utils import timezone
from flowr.models import Instance
from tests.timer_support import queued, timed_example
machine = timed_example(due_after=3600)
ids = [machine.start().pk for _ in range(30)]
due = timezone.now() + timedelta(seconds=1)
Instance.objects.update(due_at=due)
queued("fire_timeout").update(run_after=due)
"""


@pytest.mark.django_db
def test_the_demo_worker_fires_timers_once_on_sqlite(tmp_path):
    """`make run`'s setting: a SQLite file and the Procfile's worker."""
    database = tmp_path / "demo.sqlite3"
    env = {k: v for k, v in worker_env().items() if k != "DATABASE_URL"}
    env.update(FLOWR_SQLITE_PATH=str(database), DEBUG="1")
    for command in (["migrate", "--noinput", "-v", "0"], ["shell", "-c", SQLITE_SETUP]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=300)

    def count(sql):
        with sqlite3.connect(database, timeout=20) as db:
            return db.execute(sql).fetchone()[0]
    log = tmp_path / "worker.log"
    worker = start_worker("sqlite", env, log, *FAST)
    try:
        assert wait_for(lambda: count("SELECT count(*) FROM flowr_instance WHERE "
                                      "state_name = 'B'") == 30, timeout=120), log.read_text()
    finally:
        stop_worker(worker)
    assert count("SELECT count(*) FROM flowr_historyentry WHERE kind = 'timeout'") == 30
    assert count("SELECT count(DISTINCT instance_id) FROM flowr_historyentry "
                 "WHERE kind = 'timeout'") == 30
    assert "Traceback" not in log.read_text() and "locked" not in log.read_text()
