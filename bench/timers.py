"""Timers fired by real `manage.py db_worker` processes on PostgreSQL.

    FLOWR_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/flowr_bench_NAME python bench/timers.py

1,000 instances wait in a state with a deadline; their timeout tasks are made due at the
same second; worker processes started beforehand, exactly as the Procfile's `worker:`
line says (its options and environment), step them. Prints all_fired_s_1_worker and all_fired_s_2_workers (due → the last one
stepped), fire_p50_s_2_workers and fire_p99_s_2_workers (due → stepped, per timer) and
duplicates (timers that stepped their instance twice), plus the same per-timer figures
for one worker and stale_timers.
"""
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _django  # noqa: E402

PG_URL = os.environ.get("FLOWR_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/flowr_bench")
TIMERS = 1000


def start_round(machine):
    """1,000 instances at A whose timers are due at the same whole second, 2 s from now."""
    from django.db import connection, transaction
    from django.utils import timezone

    from flowr.models import Instance
    from tests.timer_support import queued

    with transaction.atomic():
        ids = [machine.start().pk for _ in range(TIMERS)]
    due = (timezone.now() + timedelta(seconds=2)).replace(microsecond=0)
    Instance.objects.filter(pk__in=ids).update(due_at=due)
    queued("fire_timeout").filter(args_kwargs__args__0__in=[str(i) for i in ids]) \
        .update(run_after=due)
    with connection.cursor() as cursor:
        # Planner statistics as autovacuum keeps them on a live queue table (a table
        # filled a moment ago has none, and the workers' claim query would scan it).
        cursor.execute("ANALYZE django_tasks_database_dbtaskresult")
    return ids, due


def fire_delays(ids, due):
    """Seconds from due to stepped for each instance (and how many stepped twice)."""
    from django.db.models import Count

    from flowr.models import HistoryEntry

    entries = HistoryEntry.objects.filter(instance_id__in=ids, kind=HistoryEntry.TIMEOUT)
    delays = sorted((at - due).total_seconds() for at in entries.values_list("at", flat=True))
    twice = (entries.values("instance_id").annotate(n=Count("pk")).filter(n__gt=1).count())
    return delays, twice


def run_round(machine, workers, folder):
    from flowr.models import HistoryEntry
    from tests.timer_support import (
        start_worker, stop_worker, wait_for, worker_env, worker_started,
    )

    env = worker_env()
    logs = [Path(folder) / f"w{workers}-{n}.log" for n in range(workers)]
    processes = [start_worker(f"bench-{workers}-{n}", env, log)
                 for n, log in enumerate(logs)]
    try:
        if not wait_for(lambda: all(map(worker_started, logs)), timeout=120):
            raise SystemExit("the workers did not start: " + logs[0].read_text()[-2000:])
        ids, due = start_round(machine)

        def fired():
            return HistoryEntry.objects.filter(instance_id__in=ids,
                                               kind=HistoryEntry.TIMEOUT).count() >= len(ids)
        if not wait_for(fired, timeout=600, every=0.5):
            raise SystemExit("not every timer fired within 10 minutes")
        time.sleep(2)  # let a duplicate show up, if there were one
    finally:
        for process in processes:
            stop_worker(process)
    return fire_delays(ids, due)


def percentile(values, fraction):
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def main():
    if not _django.postgres_available():
        print("skipped: PostgreSQL is not running on 127.0.0.1:5432")
        return
    _django.setup(PG_URL)
    from tests.timer_support import queued, timed_example

    machine = timed_example(due_after=3600, name="Bench timers")
    duplicates = 0
    with tempfile.TemporaryDirectory(prefix="flowr-bench-timers-") as folder:
        for workers in (1, 2):
            delays, twice = run_round(machine, workers, folder)
            duplicates += twice
            suffix = f"{workers}_worker{'s' if workers > 1 else ''}"
            print(f"all_fired_s_{suffix}: {delays[-1]:.2f}")
            print(f"fire_p50_s_{suffix}: {percentile(delays, 0.5):.2f}")
            print(f"fire_p99_s_{suffix}: {percentile(delays, 0.99):.2f}")
    stale = queued("fire_timeout", status=None).filter(return_value__result="stale").count()
    print(f"duplicates: {duplicates}")
    print(f"stale_timers: {stale}")


if __name__ == "__main__":
    main()
