from django.core.management.base import BaseCommand

from flowr.sync import sync_rule_sets


class Command(BaseCommand):
    help = "Mirror the rule sets registered in code into the database."

    def handle(self, *args, **options):
        created, updated, gone = sync_rule_sets()
        self.stdout.write(f"Rule sets: {created} created, {updated} updated, "
                          f"{gone} marked as no longer registered.")
