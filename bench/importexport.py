"""Export and import of a 500-state machine: seconds and queries.

    python bench/importexport.py

Configures Django itself on a temporary SQLite file (migrated), builds a 500-state
machine, then prints export_500_s, import_500_s, export_500_queries and
import_500_queries, one `name: value` line each. Times are the median of 5 runs;
an import is into a database where the machine does not exist (a full create, with
its django-reversion revision).
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _django  # noqa: E402

STATES = 500
RUNS = 5


def measure(func):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        value = func()
        elapsed = time.perf_counter() - started
    return elapsed, len(queries), value


def main():
    _django.setup()
    from tests.factories import chain_document, register_chain_rules

    register_chain_rules("bench_chain")
    from flowr import interchange
    from flowr.models import Machine
    from flowr.resources import MachineJSON, MachineResource

    machine, _ = interchange.apply_document(
        chain_document(STATES, f"Chain {STATES}", key="bench_chain"))
    queryset = Machine.objects.filter(pk=machine.pk)

    def export():
        return MachineJSON().export_data(MachineResource().export(queryset))

    def import_(text):
        dataset = MachineJSON().create_dataset(text)
        result = MachineResource().import_data(dataset, dry_run=False, file_name="bench.json")
        assert result.totals["new"] == 1 and not result.has_validation_errors()

    export_runs, import_runs = [], []
    for _ in range(RUNS):
        export_runs.append(measure(export))
        text = export_runs[-1][2]
        Machine.objects.all().delete()
        import_runs.append(measure(lambda text=text: import_(text)))
        queryset = Machine.objects.all()
    print(f"export_500_s: {statistics.median(r[0] for r in export_runs):.4f}")
    print(f"import_500_s: {statistics.median(r[0] for r in import_runs):.4f}")
    print(f"export_500_queries: {export_runs[-1][1]}")
    print(f"import_500_queries: {import_runs[-1][1]}")


if __name__ == "__main__":
    main()
