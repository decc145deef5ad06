"""Import/export of machines as JSON in the admin (django-import-export)."""
import os
import re
import tempfile
import time

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import slugify
from import_export.admin import ImportExportMixin
from import_export.forms import ConfirmImportForm, ExportForm, ImportForm
from import_export.results import RowResult
from import_export.tmp_storages import TempFolderStorage

from .. import config, interchange
from ..resources import MachineJSON, MachineResource
from ._ids import get_or_404

MAX_MESSAGES = 20


class MachineImportForm(ImportForm):
    """The import form; refuses a file above FLOWR_IMPORT_MAX_BYTES before reading it."""

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        problem = interchange.size_error(upload.size)
        if problem:
            raise forms.ValidationError(problem)
        return upload


class MachineConfirmImportForm(ConfirmImportForm):
    """The confirm step's hidden fields; only Flowr's one format and resource exist."""

    def clean_format(self):
        return _only_zero(self.cleaned_data["format"])

    def clean_resource(self):
        return _only_zero(self.cleaned_data["resource"] or "0")


def _only_zero(value):
    if value != "0":  # index of the one import format / resource (Flowr JSON)
        raise forms.ValidationError("Flowr imports one format only (Flowr JSON).")
    return value


class ImportUploads(TempFolderStorage):
    """Uploads waiting between preview and confirm, in a private folder, removed on
    confirm and on refusal, and after FLOWR_IMPORT_TMP_MAX_AGE seconds at the latest."""

    PREFIX = "flowr-import-"
    _NAME = re.compile(r"^flowr-import-[A-Za-z0-9_]{4,64}$")

    @staticmethod
    def folder():
        """The folder of waiting uploads (FLOWR_IMPORT_TMP_DIR), created private."""
        path = config.get("FLOWR_IMPORT_TMP_DIR") or os.path.join(tempfile.gettempdir(),
                                                                   "flowr-imports")
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    @classmethod
    def remove_old(cls, max_age=None):
        """Remove the uploads older than `max_age` seconds; returns how many."""
        max_age = config.get("FLOWR_IMPORT_TMP_MAX_AGE") if max_age is None else max_age
        folder, limit, removed = cls.folder(), time.time() - max_age, 0
        for entry in os.scandir(folder):
            try:
                old = cls._NAME.match(entry.name) and entry.stat().st_mtime < limit
            except FileNotFoundError:  # removed meanwhile by another process
                continue
            if old:
                removed += _unlink(entry.path)
        return removed

    def save(self, data):
        self.remove_old()
        handle, path = tempfile.mkstemp(prefix=self.PREFIX, dir=self.folder())
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        self.name = os.path.basename(path)

    def get_full_path(self):
        if not self._NAME.match(self.name or ""):
            # A posted name that is not one of ours names no upload (never another file).
            raise FileNotFoundError(f"No import upload named {self.name!r}.")
        return os.path.join(self.folder(), self.name)

    def remove(self):
        try:
            _unlink(self.get_full_path())
        except FileNotFoundError:
            pass


def _unlink(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        return 0
    return 1


def json_download(queryset, filename):
    """An attachment response holding the machines of `queryset` as Flowr JSON."""
    data = MachineJSON().export_data(MachineResource().export(queryset))
    response = HttpResponse(data, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class MachineImportExportMixin(ImportExportMixin):
    """Import (preview, then confirm) and export of machines as Flowr JSON."""

    resource_classes = [MachineResource]
    import_form_class = MachineImportForm
    confirm_form_class = MachineConfirmImportForm
    tmp_storage_class = ImportUploads
    export_form_class = ExportForm  # no field picking: every column is needed to round-trip
    import_template_name = "admin/flowr/machine/import.html"
    export_template_name = "admin/flowr/machine/export.html"
    import_error_display = ("message",)

    def get_import_formats(self):
        return [MachineJSON]

    def get_export_formats(self):
        return [MachineJSON]

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_or_change_permission(request)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/export-json/", self.admin_site.admin_view(self.export_one_view),
                 name="%s_%s_export_json" % info),
        ] + super().get_urls()

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.has_export_permission(request):
            actions["export_machines_json"] = (
                type(self).export_machines_json, "export_machines_json",
                "Export selected machines as JSON")
        return actions

    def export_machines_json(self, request, queryset):
        """Admin action: download the selected machines as one JSON file."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        return json_download(queryset, self.get_export_filename(request, queryset, None))

    def export_one_view(self, request, object_id):
        """Download one machine as JSON (a read: GET is fine)."""
        machine = get_or_404(self.get_queryset(request), unquote(object_id))
        if not (self.has_export_permission(request)
                and self.has_view_or_change_permission(request, machine)):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=machine.pk)
        return json_download(queryset, f"{slugify(machine.name) or 'machine'}.json")

    def get_export_filename(self, request, queryset, file_format):
        return f"machines-{timezone.now():%Y-%m-%d}.json"

    def get_export_context_data(self, **kwargs):
        context = super().get_export_context_data(**kwargs)
        context["flowr_format"] = interchange.FORMAT
        return context

    def get_import_context_data(self, **kwargs):
        context = super().get_import_context_data(**kwargs)
        context["flowr_max_bytes"] = interchange.size_text(config.get("FLOWR_IMPORT_MAX_BYTES"))
        context["flowr_max_states"] = config.get("FLOWR_IMPORT_MAX_STATES")
        context["flowr_format"] = interchange.FORMAT
        return context

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None)
        if context is not None and not context.get("fields_list"):
            # import-export leaves the field list empty when the form has errors.
            context["fields_list"] = [(MachineResource.get_display_name(),
                                       list(interchange.COLUMNS))]
        if context is not None and not context.get("confirm_form"):
            _discard_upload(request)  # refused: nothing will confirm it
        return response

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, interchange.DocumentError):
            message = str(e)
        elif isinstance(e, UnicodeDecodeError):
            message = ("The file is not UTF-8 text; export it again from Flowr or save it "
                       "as UTF-8.")
        else:
            message = (f"The file could not be read as Flowr JSON ({type(e).__name__}); "
                       f"choose a file exported by Flowr.")
        form.add_error("import_file", message)

    def process_import(self, request, **kwargs):
        if request.method != "POST" or not self.has_import_permission(request):
            return super().process_import(request, **kwargs)  # 405 or 403
        # Confirmed or refused, the upload is done with afterwards (import-export only
        # removes it when the import runs to its end).
        upload = ImportUploads(name=request.POST.get("import_file_name", ""))
        try:
            if not self.create_confirm_form(request).is_valid():
                messages.error(request, "Nothing was imported: the confirmation form was "
                                        "incomplete or altered; upload the file again.")
                return HttpResponseRedirect(self._import_url())
            return super().process_import(request, **kwargs)
        except interchange.DocumentError as exc:
            messages.error(request, f"Nothing was imported: {exc}")
        except (OSError, UnicodeDecodeError):
            messages.error(request, "Nothing was imported: the uploaded file is no longer "
                                    "available (or was changed); upload it again.")
        finally:
            upload.remove()
        return HttpResponseRedirect(self._import_url())

    def process_result(self, result, request):
        if not (result.has_errors() or result.has_validation_errors()):
            return super().process_result(result, request)
        # The data changed between preview and confirm: report it, nothing was written.
        problems = [f"Row {row.number}: {message}" for row in result.invalid_rows
                    for message in row.error.messages]
        problems += [f"Row {number}: {error.error}" for number, errors in result.row_errors()
                     for error in errors]
        problems += [str(error.error) for error in result.base_errors]
        for problem in problems[:MAX_MESSAGES]:
            messages.error(request, problem)
        messages.error(request, "Nothing was imported; correct the file and import it again.")
        return HttpResponseRedirect(self._import_url())

    def add_success_message(self, result, request):
        kinds = (("new", RowResult.IMPORT_TYPE_NEW), ("updated", RowResult.IMPORT_TYPE_UPDATE),
                 ("unchanged", RowResult.IMPORT_TYPE_SKIP))
        parts = []
        for kind_name, kind in kinds:
            rows = [row.object_repr for row in result.rows if row.import_type == kind]
            if rows:
                parts.append(f"{len(rows)} {kind_name}: {', '.join(rows)}")
        messages.success(request, f"Import finished: {'; '.join(parts) or 'nothing to do'}.")

    def _import_url(self):
        return reverse("%s:%s_%s_import" % (self.admin_site.name, self.opts.app_label,
                                            self.opts.model_name))


def _discard_upload(request):
    """Remove the upload of a refused preview (import-export keeps it for a confirm)."""
    name = getattr(request.FILES.get("import_file"), "tmp_storage_name", None)
    if name:
        ImportUploads(name=name).remove()
