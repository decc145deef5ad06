"""Load the demo machines and create the demo login (demo mode only)."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from flowr import taskqueue
from flowr.demo.setup import DEMO_PASSWORD, DEMO_USERNAME, TEAM, load_demo, setup_team


class Command(BaseCommand):
    help = "Create the demo machines, a few instances and the demo login (DEBUG/demo mode only)."

    def handle(self, *args, **options):
        if not getattr(settings, "FLOWR_DEMO", False):
            raise CommandError("setupdemo only runs in demo mode (DEBUG on, FLOWR_DEMO not 0); "
                               "it never creates a demo login with production settings.")
        created = load_demo()
        taskqueue.ensure_sweep()  # recovers timers of a worker killed while running them
        user_model = get_user_model()
        user, new = user_model.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True})
        if new:
            user.set_password(DEMO_PASSWORD)
            user.save()
        team = setup_team(user)
        self.stdout.write(f"Demo machines: {', '.join(created) or 'already loaded'}.")
        self.stdout.write(f"Demo team: {'created' if team else 'already there'}.")
        self.stdout.write(self.style.SUCCESS(
            f"Demo login: username '{DEMO_USERNAME}', password '{DEMO_PASSWORD}'"))
        for username, password, group in TEAM:
            self.stdout.write(self.style.SUCCESS(
                f"Demo {group} member: username '{username}', password '{password}'"))
