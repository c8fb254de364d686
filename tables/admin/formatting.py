"""Values as the admin pages show them: JSON in a cell or a block, sizes, links to history."""

from __future__ import annotations

import json
from typing import Any

from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.http import urlencode


def compact_json(value: Any) -> str:
    """One-line JSON for a table cell."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def human_size(size: int | None) -> str:
    return filesizeformat(size or 0)


def transactions_url(datastore_pk: int, **params: str) -> str:
    """The Transaction changelist filtered by a datastore (and optionally by a record)."""
    query = urlencode({"datastore__id__exact": datastore_pk, **params})
    return f"{reverse('admin:tables_transaction_changelist')}?{query}"
