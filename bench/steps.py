"""Stepping throughput and query counts.

    python bench/steps.py

Prints queries_per_start, queries_per_step_3, queries_per_step_500, steps_per_s_sqlite,
steps_per_s_postgres and build_publish_500_s, one `name: value` line each. The
PostgreSQL figure runs in a child process on a scratch database `flowr_bench`.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _django  # noqa: E402

STEPS = 10_000
PG_URL = os.environ.get("FLOWR_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/flowr_bench")


def chain_machine(length, name):
    from tests.factories import cycle_machine

    return cycle_machine(length, name, key="bench")


def count_queries(fn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


def steps_per_second(machine, instances=20):
    running = [machine.start() for _ in range(instances)]
    for instance in running:
        instance.step()  # warm the cache
    began = time.perf_counter()
    for n in range(STEPS):
        running[n % instances].step()
    return STEPS / (time.perf_counter() - began)


def main_postgres():
    _django.setup(PG_URL)
    machine = chain_machine(3, "PG")
    print(f"steps_per_s_postgres: {steps_per_second(machine):.0f}")


def main():
    _django.setup()
    began = time.perf_counter()
    big = chain_machine(500, "Big")
    print(f"build_publish_500_s: {time.perf_counter() - began:.2f}")
    small = chain_machine(3, "Small")
    small.start()  # the first start of a version reads its definition once per process
    print(f"queries_per_start: {count_queries(small.start)}")
    for label, machine in (("3", small), ("500", big)):
        instance = machine.start()
        instance.step()
        print(f"queries_per_step_{label}: {count_queries(instance.step)}")
    print(f"steps_per_s_sqlite: {steps_per_second(small):.0f}")
    sys.stdout.flush()
    if _django.postgres_available():
        subprocess.run([sys.executable, __file__, "--postgres"], check=True)
    else:
        print("steps_per_s_postgres: unavailable (PostgreSQL not reachable)", file=sys.stderr)


if __name__ == "__main__":
    main_postgres() if "--postgres" in sys.argv else main()
