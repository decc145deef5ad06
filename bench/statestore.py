"""Task-state store throughput: a get plus a put counts as two operations.

    python bench/statestore.py

Prints `django_store_ops_per_s: N` (temporary SQLite file, the project's SQLite
settings, autocommit per operation) and `redis_store_ops_per_s: N` (Redis at
FLOWS_REDIS_STATE_STORE_HOST/PORT, DB FLOWR_BENCH_REDIS_DB, default 9; only the
bench's own keys are written and deleted). Notes go to stderr.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _django  # noqa: E402

TASKS = 100
SECONDS = float(os.environ.get("FLOWR_BENCH_SECONDS", "3"))


def run(store):
    """Operations per second of get+put cycles over TASKS task ids for SECONDS."""
    ids = [f"bench-{i}" for i in range(TASKS)]
    for task_id in ids:
        store.put_state(task_id, {"count": 0, "owner": "bench", "tags": ["a", "b"]})
    ops, started = 0, time.perf_counter()
    while time.perf_counter() - started < SECONDS:
        for task_id in ids:
            state = store.get_state(task_id)
            state["count"] += 1
            store.put_state(task_id, state)
        ops += 2 * len(ids)
    rate = ops / (time.perf_counter() - started)
    for task_id in ids:
        store.delete_state(task_id)
    return round(rate)


def redis_rate():
    from django.conf import settings

    from flowr.statestore import StoreUnavailable, redis_store

    settings.FLOWS_REDIS_STATE_STORE_DB = int(os.environ.get("FLOWR_BENCH_REDIS_DB", "9"))
    store = redis_store.StateStore()
    try:
        store.health()
    except StoreUnavailable as exc:
        print(f"Redis not measured: {exc}", file=sys.stderr)
        return 0
    return run(store)


def main():
    _django.setup()
    from flowr.statestore import django_store

    print(f"django_store_ops_per_s: {run(django_store.StateStore())}", flush=True)
    print(f"redis_store_ops_per_s: {redis_rate()}", flush=True)


if __name__ == "__main__":
    main()
