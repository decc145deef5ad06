"""django-import-export resource for machines: one row is one machine (format 1).

The file format is flowr.interchange's: a JSON list of machine documents. Importing
validates every row completely in `before_import`, before any row is written; if any
row is invalid, no row is written, and each invalid row reports its messages (naming
the machine). Each written row is one django-reversion revision with user and comment
(rows of one admin request share the request's revision).
"""
import json

import tablib
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from import_export import resources
from import_export.fields import Field
from import_export.formats import base_formats
from import_export.resources import Diff
from import_export.results import Error, InvalidRow, Result

from . import interchange
from .builder import revision
from .models import Machine

COLUMNS = interchange.COLUMNS


class MachineJSON(base_formats.JSON):
    """JSON that round-trips: size- and depth-checked on import, indented on export."""

    def create_dataset(self, in_stream, **kwargs):
        return dataset_of(interchange.parse(in_stream))

    def export_data(self, dataset, **kwargs):
        return interchange.dumps(dataset.dict)


def dataset_of(documents):
    """A tablib Dataset with one row per document; the documents ride along unchanged."""
    dataset = tablib.Dataset(headers=list(COLUMNS))
    for doc in documents:
        dataset.append([doc.get(c) if isinstance(doc, dict) else None for c in COLUMNS])
    dataset.flowr_documents = list(documents)
    return dataset


def summary(value, column):
    """A short, readable cell for previews and error tables (never a whole graph)."""
    if column == "graph" and isinstance(value, dict):
        states, edges = value.get("states"), value.get("transitions")
        if isinstance(states, list) and isinstance(edges, list):
            return f"{len(states)} states, {len(edges)} transitions, root {value.get('root')!r}"
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


class _QuietError(Error):
    """An import error shown by its message only: tracebacks never reach the page."""

    traceback = ""


class _MachineResult(Result):
    def append_invalid_row(self, number, row, validation_error):
        values = tuple(summary(row.get(col), col) for col in self.diff_headers)
        self.invalid_rows.append(InvalidRow(number=number, validation_error=validation_error,
                                            values=values))


class _MachineDiff(Diff):
    """Preview cells from the resource's summaries (the base class reads raw fields)."""

    def __init__(self, resource, instance, new):
        super().__init__(resource, instance, new)
        self.left = resource.preview_values(instance)

    def compare_with(self, resource, instance):
        self.right = resource.preview_values(instance)


class MachineResource(resources.ModelResource):
    """One row = one machine: uuid, name, description, rule_set, format, graph."""

    uuid = Field(attribute="uuid", column_name="uuid")
    name = Field(attribute="name", column_name="name")
    description = Field(attribute="description", column_name="description")
    rule_set = Field(attribute="rule_set", column_name="rule_set")
    format = Field(column_name="format")
    graph = Field(column_name="graph")

    class Meta:
        model = Machine
        name = "Machines (Flowr JSON, format 1)"
        fields = COLUMNS
        import_id_fields = ["uuid"]
        use_transactions = True
        clean_model_instances = False
        skip_unchanged = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.documents, self.row_errors = [], {}

    @classmethod
    def get_result_class(cls):
        return _MachineResult

    @classmethod
    def get_error_result_class(cls):
        return _QuietError

    @classmethod
    def get_diff_class(cls):
        return _MachineDiff

    # -- export ---------------------------------------------------------------------
    def export(self, queryset=None, **kwargs):
        queryset = self.get_queryset() if queryset is None else queryset
        if isinstance(queryset, QuerySet):
            queryset = interchange.export_queryset(queryset)
        return super().export(queryset, **kwargs)

    def get_export_headers(self, selected_fields=None):
        return list(COLUMNS)

    def export_resource(self, instance, selected_fields=None, **kwargs):
        doc = interchange.document_of(instance)
        return [doc[column] for column in COLUMNS]

    # -- import ---------------------------------------------------------------------
    def import_data(self, dataset, dry_run=False, raise_errors=False, use_transactions=None,
                    collect_failed_rows=False, rollback_on_validation_errors=False, **kwargs):
        """Import like import-export, but any invalid row always rolls everything back."""
        return super().import_data(dataset, dry_run=dry_run, raise_errors=raise_errors,
                                   use_transactions=use_transactions,
                                   collect_failed_rows=collect_failed_rows,
                                   rollback_on_validation_errors=True, **kwargs)

    def before_import(self, dataset, **kwargs):
        """Validate every row completely before any row is imported."""
        self.documents = getattr(dataset, "flowr_documents", None)
        if self.documents is None:  # a plain tablib Dataset: rebuild documents from rows
            headers = dataset.headers or ()
            self.documents = [
                {h: v for h, v in zip(headers, row, strict=False) if v is not None}
                for row in dataset]
        self.row_errors = {}
        for number, doc in enumerate(self.documents, 1):
            errors = interchange.validate_document(doc, number=number)
            if errors:
                self.row_errors[number] = errors
        self._check_rows_against_each_other()

    def _check_rows_against_each_other(self):
        seen = {"uuid": {}, "name": {}}
        for number, doc in enumerate(self.documents, 1):
            if number in self.row_errors:
                continue
            for field, values in seen.items():
                value = doc[field].strip() if field == "name" else str(interchange.uuid_of(doc))
                if value in values:
                    self.row_errors[number] = [
                        f"{interchange.label(doc, number)}: row {values[value]} has the same "
                        f"{field}; a file may hold each machine only once."]
                    break
                values[value] = number

    def before_import_row(self, row, **kwargs):
        errors = self.row_errors.get(kwargs.get("row_number"))
        if errors:
            raise ValidationError(errors)

    def import_instance(self, instance, row, **kwargs):
        doc = self.documents[kwargs["row_number"] - 1]
        instance.uuid = interchange.uuid_of(doc)
        instance.name = doc["name"].strip()
        instance.description = doc.get("description", "")
        instance._flowr_document = doc

    def skip_row(self, instance, original, row, import_validation_errors=None):
        """Skip a machine the document would not change (no empty revision is written)."""
        if instance.pk is None or import_validation_errors:
            return False
        doc = instance._flowr_document
        current = interchange.document_of(
            Machine.objects.select_related("rule_set").get(pk=instance.pk))
        return current == {"description": "", **doc, "uuid": str(instance.uuid),
                           "name": doc["name"].strip()}

    def save_instance(self, instance, is_create, row, **kwargs):
        if kwargs.get("dry_run") or self.row_errors:
            return  # a preview, or another row is invalid: nothing at all is written
        doc = instance._flowr_document
        with revision(user=kwargs.get("user"), comment=self._comment(is_create, kwargs)):
            machine, _ = interchange.apply_document(doc, validate=False)
        instance.pk, instance.rule_set_id = machine.pk, machine.rule_set_id
        instance._state.adding = False

    def _comment(self, is_create, kwargs):
        source = kwargs.get("file_name") or "a JSON file"
        return f"{'Created' if is_create else 'Updated'} by import from {source}."

    def preview_values(self, instance):
        """The cells shown for `instance` in the import preview (graph as a summary)."""
        doc = getattr(instance, "_flowr_document", None)
        if doc is not None:
            return [summary(doc.get(column), column) for column in COLUMNS]
        if instance is None or instance.pk is None:
            return [""] * len(COLUMNS)
        states = instance.states.count()
        edges = instance.transitions.count()
        root = instance.states.filter(is_root=True).values_list("key", flat=True).first()
        return [str(instance.uuid), instance.name, summary(instance.description, ""),
                instance.rule_set.key, str(interchange.FORMAT),
                f"{states} states, {edges} transitions, root {root!r}"]
