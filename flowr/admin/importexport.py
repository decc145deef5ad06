"""Import/export of machines as JSON in the admin (django-import-export)."""
from import_export.admin import ImportExportMixin


class MachineImportExportMixin(ImportExportMixin):
    """Import/Export buttons, dry-run preview and export action for machines."""
