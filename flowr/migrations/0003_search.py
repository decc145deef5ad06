"""Indexes for finding instances on PostgreSQL (a no-op on other databases).

- search_data GIN (jsonb_path_ops): the admin's "key = value" filter (containment, @>).
- Trigram GIN indexes (pg_trgm) on the upper-cased business key, title and search
  values: the admin's search box (UPPER(...) LIKE UPPER('%term%'), as Django's
  icontains writes it; see flowr.admin.search).
"""
from django.db import migrations

INDEXES = {
    "flowr_inst_search_data_gin": "USING gin (search_data jsonb_path_ops)",
    "flowr_inst_bkey_trgm": "USING gin ((UPPER((business_key)::text)) gin_trgm_ops)",
    "flowr_inst_title_trgm": "USING gin ((UPPER((title)::text)) gin_trgm_ops)",
    "flowr_inst_values_trgm": "USING gin ((UPPER((jsonb_path_query_array(search_data, "
                              "'$.*'::jsonpath))::text)) gin_trgm_ops)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON flowr_instance "
                              f"{definition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ("flowr", "0002_foundation"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]
