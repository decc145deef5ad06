"""The demo machines' candidate groups: the demo fixture names them, so they must exist
wherever the demo rules are installed (imports validate group names)."""
from django.db import migrations

GROUPS = ("Reviewers", "Shipping", "Support")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in GROUPS:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):

    dependencies = [
        ("flowr_demo", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
