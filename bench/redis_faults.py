"""How long a step waits before it reports a Redis that does not answer (default timeouts).

    python bench/redis_faults.py

Prints `stalled_redis_step_error_s: N` (Redis reached through tests/faultproxy.py, which
holds every reply, like CLIENT PAUSE) and `unreachable_redis_step_error_s: N` (a
listener whose accept queue is full: connects time out), each the median of 5 steps of
a Support ticket, on a temporary SQLite file. Redis DB FLOWR_BENCH_REDIS_DB (default 9),
only the bench's own keys. Notes go to stderr.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _django  # noqa: E402

RUNS = 5


def timed_failure(ticket):
    """Seconds until a step of `ticket` fails (it must fail)."""
    from flowr import engine
    from flowr.models import Instance
    from flowr.statestore import StoreUnavailable

    started = time.perf_counter()
    try:
        engine.step(Instance.objects.get(pk=ticket.pk), to="Open")
    except StoreUnavailable:
        return time.perf_counter() - started
    raise SystemExit("the step did not fail: the fault was not in effect")


def main():
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        print("Redis is not running on 127.0.0.1:6379; nothing measured.", file=sys.stderr)
        return
    _django.setup()
    from django.conf import settings

    from flowr.demo.setup import load_demo
    from flowr.models import Machine
    from tests.faultproxy import FaultProxy, unreachable

    load_demo()
    machine = Machine.objects.get(rule_set__key="support")
    settings.FLOWS_STATE_STORE = "flowr.statestore.redis_store"
    settings.FLOWS_REDIS_STATE_STORE_HOST = "127.0.0.1"
    settings.FLOWS_REDIS_STATE_STORE_DB = int(os.environ.get("FLOWR_BENCH_REDIS_DB", "9"))
    stalled = []
    with FaultProxy() as proxy:
        settings.FLOWS_REDIS_STATE_STORE_PORT = proxy.port
        for _ in range(RUNS):
            ticket = machine.start()
            proxy.hold_replies()
            stalled.append(timed_failure(ticket))
            proxy.release()
    unreached = []
    with unreachable() as (host, port):
        settings.FLOWS_REDIS_STATE_STORE_HOST, settings.FLOWS_REDIS_STATE_STORE_PORT = host, port
        for _ in range(RUNS):
            unreached.append(timed_failure(machine.instances.first()))
    print(f"stalled_redis_step_error_s: {statistics.median(stalled):.2f}", flush=True)
    print(f"unreachable_redis_step_error_s: {statistics.median(unreached):.2f}", flush=True)


if __name__ == "__main__":
    main()
