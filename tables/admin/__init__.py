"""The admin as a table browser: datastores, their history and documents, and projected rows.

Nothing here writes a document directly. Datastores are created by ``tables.service``, projected
records are edited through ``tables.records`` (the write path, origin "admin"), undo goes through
``tables.undo``; patch history and checkpoints are read-only.

Admin autodiscovery imports this package: importing the modules below registers their admins.
Other apps build on ``ProjectedRecordAdmin``, ``ReadOnlyAdmin`` and ``ReadOnlyInline``.
"""

from django.contrib import admin

from tables.admin import checkpoints, datastores, transactions
from tables.admin.projected import ProjectedRecordAdmin
from tables.admin.read_only import ReadOnlyAdmin, ReadOnlyInline

admin.site.site_header = "Jupyter RTC"
admin.site.site_title = "Jupyter RTC"
admin.site.index_title = "Datastores, history and projections"

__all__ = [
    "ProjectedRecordAdmin",
    "ReadOnlyAdmin",
    "ReadOnlyInline",
    "checkpoints",
    "datastores",
    "transactions",
]
