"""Migrate running instances of a machine to another version, with a state mapping."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from flowr import migrations_api
from flowr.exceptions import FlowrError
from flowr.models import Machine


def _is_uuid(text):
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _pair(text):
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise CommandError(f"--map takes OLD_STATE=NEW_STATE, not {text!r}.")
    return old.strip(), new.strip()


class Command(BaseCommand):
    help = ("Migrate the active instances of a machine to another version. States the target "
            "lacks are mapped by stable key, then by rule, then by --map/--leave/--cancel "
            "(states by name or key). Prints the counts per state and the outcome; exits "
            "non-zero, writing nothing, when the mapping is invalid. Hooks do not run.")

    def add_arguments(self, parser):
        parser.add_argument("--machine", required=True, metavar="NAME_OR_UUID",
                            help="The machine, by name or uuid.")
        parser.add_argument("--to", required=True, metavar="VERSION_NUMBER",
                            help="The target version number.")
        parser.add_argument("--from", dest="source", metavar="VERSION_NUMBER",
                            help="Only instances on this version (default: every version "
                                 "but the target).")
        parser.add_argument("--map", action="append", default=[], metavar="OLD_STATE=NEW_STATE",
                            help="Move the instances in OLD_STATE to NEW_STATE of the target.")
        parser.add_argument("--leave", action="append", default=[], metavar="STATE",
                            help="Leave the instances in STATE on their version.")
        parser.add_argument("--cancel", action="append", default=[], metavar="STATE",
                            help="Cancel the instances in STATE.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Print what would happen; write nothing.")
        parser.add_argument("--note", default="", help="Why (written into each history entry).")
        parser.add_argument("--user", metavar="USERNAME",
                            help="Record the migration as done by this user.")
        parser.add_argument("--batch-size", type=int, default=500,
                            help="Instances per transaction (default 500).")

    def handle(self, *args, **options):
        machine = self._machine(options["machine"])
        user = self._user(options["user"])
        try:
            plan = migrations_api.plan_migration(
                machine, options["to"], source=options["source"], user=user,
                mapping=dict(_pair(text) for text in options["map"]),
                leave=options["leave"], cancel=options["cancel"])
        except FlowrError as exc:
            raise CommandError(str(exc)) from exc
        self._print_plan(machine, plan)
        if plan.problems:
            raise CommandError("The mapping is invalid; nothing was migrated:\n" + "\n".join(
                f"  {s.name} [{s.key}]: {s.problem}" for s in plan.states if s.problem))
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written.")
            return
        migration = self._run(plan, user, options)
        self.stdout.write(f"Migration #{migration.pk} {migration.status}: {migration.migrated} "
                          f"migrated, {migration.cancelled} cancelled, {migration.left} left, "
                          f"{migration.refused} refused.")
        if migration.status == migration.FAILED:
            raise CommandError(f"Migration #{migration.pk} failed: {migration.error} Every "
                               f"instance is migrated or untouched; rerun, or revert it with "
                               f"revert_migration {migration.pk}.")

    def _run(self, plan, user, options):
        from flowr import migration_runner

        migration = migration_runner.record_plan(plan, user=user, note=options["note"])

        def progress(current):
            self.stdout.write(f"  … {current.processed} of {current.to_process}")
        return migration_runner.run(migration.pk, batch_size=max(1, options["batch_size"]),
                                    progress=progress)

    def _print_plan(self, machine, plan):
        counts = plan.counts()
        self.stdout.write(f"Machine '{machine}': {len(plan.instances)} instance(s) to version "
                          f"{plan.target.number}.")
        for state in plan.states:
            choice = state.choice
            if choice.action == "map":
                how = {"key": "same state", "rule": "same rule"}.get(choice.how, "mapped")
                outcome = f"→ '{plan.graph.names.get(choice.to, choice.to)}' ({how})"
            else:
                outcome = {"leave": "left on their version", "cancel": "cancelled"}.get(
                    choice.action, "not mapped")
            versions = ", ".join(f"v{n}" for n in state.versions)
            flag = "  REFUSED" if state.problem else ""
            self.stdout.write(f"  {state.name} [{state.key}] on {versions}: {state.count} "
                              f"{outcome}{flag}")
        self.stdout.write(f"Totals: {counts['map']} to migrate, {counts['cancel']} to cancel, "
                          f"{counts['leave']} left, {counts['refused']} refused.")

    def _machine(self, ref):
        lookup = Q(name=ref) | Q(uuid=ref) if _is_uuid(ref) else Q(name=ref)
        machine = Machine.objects.filter(lookup).first()
        if machine is None:
            raise CommandError(f"No machine named or with uuid {ref!r}.")
        return machine

    def _user(self, username):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return user
