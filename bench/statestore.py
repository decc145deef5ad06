"""Task-state store throughput: a get plus a put counts as two operations.

    python bench/statestore.py

Prints `django_store_ops_per_s: N` (temporary SQLite file, the project's SQLite
settings, autocommit per operation) and `redis_store_ops_per_s: N` (Redis at
FLOWS_REDIS_STATE_STORE_HOST/PORT, DB FLOWR_BENCH_REDIS_DB, default 9; only the
bench's own keys are written and deleted). Notes go to stderr.
"""
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = 100
SECONDS = float(os.environ.get("FLOWR_BENCH_SECONDS", "3"))


def setup_django(folder):
    """Configure the project on a fresh SQLite file and migrate it."""
    sys.path.insert(0, ROOT)
    os.environ["DJANGO_SETTINGS_MODULE"] = "flowr_site.settings"
    # Production-like: DEBUG off, so no query logging.
    os.environ.update(DEBUG="0", SECRET_KEY="bench-" + "x" * 50,
                      ALLOWED_HOSTS="localhost", FLOWR_SQLITE_PATH=os.path.join(folder, "b.db"))
    os.environ.pop("DATABASE_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


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
    folder = tempfile.mkdtemp(prefix="flowr-bench-statestore-")
    try:
        setup_django(folder)
        from flowr.statestore import django_store

        print(f"django_store_ops_per_s: {run(django_store.StateStore())}", flush=True)
        print(f"redis_store_ops_per_s: {redis_rate()}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
