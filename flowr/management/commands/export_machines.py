"""Export machines as Flowr JSON (format 1), the file the admin and import_machines read."""
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from flowr.models import Machine
from flowr.resources import MachineJSON, MachineResource


class Command(BaseCommand):
    help = ("Write machines as a Flowr JSON file (one document per machine: rule set, states, "
            "transitions, settings, root). Import it with import_machines or the admin.")

    def add_arguments(self, parser):
        parser.add_argument("machines", nargs="*", metavar="NAME_OR_UUID",
                            help="Machines to export, by name or uuid (default: all).")
        parser.add_argument("--rule-set", dest="rule_set", metavar="KEY",
                            help="Only machines of this rule set key (e.g. orders).")
        parser.add_argument("-o", "--output", metavar="FILE",
                            help="Write to FILE instead of standard output.")

    def handle(self, *args, **options):
        queryset = self._machines(options["machines"], options["rule_set"])
        text = MachineJSON().export_data(MachineResource().export(queryset))
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                out.write(text)
            self.stderr.write(f"Exported {queryset.count()} machine(s) to {options['output']}.")
        else:
            self.stdout.write(text, ending="")

    def _machines(self, wanted, rule_set):
        queryset = Machine.objects.order_by("name")
        if rule_set:
            queryset = queryset.filter(rule_set__key=rule_set)
        if not wanted:
            return queryset
        found, missing = [], []
        for item in wanted:
            lookup = Q(name=item) | Q(uuid=item) if _is_uuid(item) else Q(name=item)
            match = Machine.objects.filter(lookup).first()
            (found if match else missing).append(match.pk if match else item)
        if missing:
            raise CommandError(f"No machine named or with uuid {', '.join(map(repr, missing))}; "
                               f"nothing was exported.")
        return queryset.filter(pk__in=found)


def _is_uuid(text):
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
