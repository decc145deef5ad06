"""Revert a migration as a whole: instances unchanged since go back, the others are listed."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from flowr import migrations_api
from flowr.exceptions import FlowrError
from flowr.models import VersionMigration, VersionMigrationItem


class Command(BaseCommand):
    help = ("Revert migration ID: every instance it migrated or cancelled that has not changed "
            "since goes back to its version, state and status (one history entry each); the "
            "others are listed and left alone.")

    def add_arguments(self, parser):
        parser.add_argument("id", metavar="ID", help="The migration's number (its id).")
        parser.add_argument("--dry-run", action="store_true",
                            help="Print what would happen; write nothing.")
        parser.add_argument("--user", metavar="USERNAME",
                            help="Record the revert as done by this user.")

    def handle(self, *args, **options):
        migration = VersionMigration.objects.filter(
            pk=int(options["id"]) if options["id"].isdigit() else None).first()
        if migration is None:
            raise CommandError(f"No migration {options['id']!r}.")
        back, changed = migrations_api.revert_preview(migration)
        self.stdout.write(f"Migration #{migration.pk} ({migration.sources_label} → "
                          f"v{migration.target.number} of '{migration.machine}'): {back} "
                          f"instance(s) would go back, "
                          f"{migration.migrated + migration.cancelled - back} changed since.")
        if options["dry_run"]:
            self._list(changed)
            self.stdout.write("Dry run: nothing was written.")
            return
        try:
            migration = migrations_api.revert(migration, user=self._user(options["user"]))
        except FlowrError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Reverted: {migration.reverted} went back, {migration.kept} changed "
                          f"since and were left alone.")
        self._list(migration.items.filter(status=VersionMigrationItem.KEPT)
                   .select_related("instance")[:200])
        if migration.revert_status == migration.FAILED:
            raise CommandError(f"The revert failed: {migration.revert_error}")

    def _list(self, items):
        for item in items:
            self.stdout.write(f"  left alone: {item.instance} — now at "
                              f"'{item.instance.state_name}' ({item.instance.status})")

    def _user(self, username):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return user
