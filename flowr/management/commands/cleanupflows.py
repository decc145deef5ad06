"""Remove expired task state and mark idle instances as expired."""
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from flowr import config
from flowr.models import Instance
from flowr.statestore import get_store


class Command(BaseCommand):
    help = ("Delete task state idle longer than FLOWS_TASK_IDLE_TIMEOUT (Django store; "
            "Redis expires it by TTL) and mark active instances idle that long as expired.")

    def handle(self, *args, **options):
        timeout = config.task_idle_timeout()
        if not timeout:
            self.stdout.write("FLOWS_TASK_IDLE_TIMEOUT is 0: task state never expires; "
                              "nothing to do.")
            return
        self.stdout.write(self._clean_store())
        cutoff = timezone.now() - timedelta(seconds=timeout)
        # One UPDATE: the same test as engine.effective_status, made permanent.
        expired = (Instance.objects.filter(status=Instance.ACTIVE, last_activity__lt=cutoff)
                   .update(status=Instance.EXPIRED))
        self.stdout.write(f"Marked {expired} idle instance(s) as expired.")

    def _clean_store(self):
        store = get_store()
        name = config.get("FLOWS_STATE_STORE")
        cleanup = getattr(store, "cleanup", None)
        if cleanup is not None:
            removed = cleanup()
            return f"Removed {removed} expired task state(s) from {name}."
        if name == "flowr.statestore.redis_store":
            return ("Redis removes expired task state itself (each key has a TTL of "
                    "FLOWS_TASK_IDLE_TIMEOUT); nothing to remove.")
        return f"{name} has no cleanup(); it must expire task state itself."
