"""Import machines from a Flowr JSON file: all rows valid, or nothing is written."""
import os
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from flowr import config, interchange
from flowr.resources import MachineJSON, MachineResource


class Command(BaseCommand):
    help = ("Import machines from a Flowr JSON file (as written by export_machines or the "
            "admin). Every machine is validated against the registered rules first; with "
            "any error nothing is written. A machine whose uuid exists is updated.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="The JSON file to import, or - for standard input.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Validate and show what would change; write nothing.")
        parser.add_argument("--user", metavar="USERNAME",
                            help="Record this user on the history revisions of the import.")

    def handle(self, *args, **options):
        user = self._user(options["user"])
        try:
            dataset = MachineJSON().create_dataset(self._read(options["file"]))
        except interchange.DocumentError as exc:
            raise CommandError(f"Nothing was imported: {exc}")
        result = MachineResource().import_data(
            dataset, dry_run=options["dry_run"], use_transactions=True, user=user,
            file_name=os.path.basename(options["file"]) if options["file"] != "-" else "stdin")
        problems = self._problems(result)
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"Nothing was imported: {len(problems)} problem(s) in "
                               f"{len(result.invalid_rows) + len(result.row_errors())} row(s).")
        self._report(result, options["dry_run"])

    def _read(self, path):
        """The file's bytes; its size is checked before it is read."""
        limit = config.get("FLOWR_IMPORT_MAX_BYTES")
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            try:
                problem = interchange.size_error(os.path.getsize(path), limit)
                if problem:
                    raise CommandError(f"Nothing was imported: {problem}")
                with open(path, "rb") as handle:
                    data = handle.read(limit + 1)
            except OSError as exc:
                raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.")
        return data

    def _user(self, username):
        if not username:
            return None
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}; nothing was imported.")

    def _problems(self, result):
        problems = [f"Row {row.number}: {message}" for row in result.invalid_rows
                    for message in row.error.messages]
        problems += [f"Row {number}: {error.error}" for number, errors in result.row_errors()
                     for error in errors]
        return problems + [str(error.error) for error in result.base_errors]

    def _report(self, result, dry_run):
        verb = {"new": "would create" if dry_run else "created",
                "update": "would update" if dry_run else "updated", "skip": "left unchanged"}
        for number, row in enumerate(result.rows, 1):
            self.stdout.write(f"Row {number}: {verb.get(row.import_type, row.import_type)} "
                              f"machine '{row.object_repr}'.")
        totals = (f"{result.totals['new']} new, {result.totals['update']} updated, "
                  f"{result.totals['skip']} unchanged")
        if dry_run:
            self.stdout.write(f"Dry run: {totals}; nothing was written.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported: {totals}."))
