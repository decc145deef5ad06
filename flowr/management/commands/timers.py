"""Show the state of Flowr's timers and task queue; start the sweep; recover killed tasks."""
from django.core.management.base import BaseCommand

from flowr import taskqueue
from flowr.models import Incident, Instance


class Command(BaseCommand):
    help = ("Report Flowr's timers (waiting, late, abandoned, fired, stale, incidents); "
            "optionally queue the recurring sweep or re-queue tasks of killed workers now.")

    def add_arguments(self, parser):
        parser.add_argument("--ensure-sweep", action="store_true",
                            help="Make sure the recurring sweep task is queued (run it on "
                                 "each deploy, e.g. in the Procfile's release phase).")
        parser.add_argument("--requeue-abandoned", action="store_true",
                            help="Put Flowr tasks RUNNING past FLOWR_TIMER_LEASE back in the "
                                 "queue now, instead of waiting for the sweep.")
        parser.add_argument("--quiet", action="store_true",
                            help="Print only what was done, not the report.")

    def handle(self, *args, ensure_sweep=False, requeue_abandoned=False, quiet=False,
               **options):
        if ensure_sweep:
            created = taskqueue.ensure_sweep()
            self.stdout.write("Sweep task queued." if created else "Sweep task already queued.")
        if requeue_abandoned:
            count = taskqueue.requeue_abandoned()
            self.stdout.write(f"Re-queued {count} abandoned task{'s' if count != 1 else ''}.")
        if not quiet:
            self._report()

    def _report(self):
        lines = {**taskqueue.waiting_report(), **taskqueue.abandoned_report()}
        by_status, outcomes = taskqueue.counts()
        for (task, status), count in by_status.items():
            lines[f"{task}_{status.lower()}"] = count
        for result, count in outcomes.items():
            lines[f"timers_{result}"] = count
        lines["overdue_instances"] = Instance.objects.filter(
            status=Instance.ACTIVE, due_at__lt=_now()).count()
        lines["open_incidents"] = Incident.objects.open().count()
        for name, value in lines.items():
            self.stdout.write(f"{name}: {value}")


def _now():
    from django.utils import timezone

    return timezone.now()
