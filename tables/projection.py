"""Projection: Django models kept equal to a datastore's records after each commit.

A projector runs inside the write path's database transaction, so a projected row never shows a
change that was not committed, and never lags one that was.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils.dateparse import parse_datetime
from pycrdt import Doc, Map

from tables.models import Datastore
from tables.read_sql import fetch_all
from tables.schema import Change, jsonable


class ProjectedRecord(models.Model):
    """Base for models that mirror one table: one row per record, one column per field."""

    datastore = models.ForeignKey(Datastore, on_delete=models.CASCADE, related_name="+")
    record_id = models.CharField(max_length=200)

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["datastore", "record_id"], name="%(app_label)s_%(class)s_unique_record"
            )
        ]

    def __str__(self) -> str:
        return self.record_id


def _column_value(column: models.Field, value: Any) -> Any:
    """Fit a JSON value from the document into a typed column (a mistyped value becomes None)."""
    if value is None:
        return None if column.null else column.get_default()
    if isinstance(column, models.BooleanField):
        return value if isinstance(value, bool) else None
    if isinstance(column, (models.IntegerField, models.BigIntegerField)):
        return (
            int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        )
    if isinstance(column, models.FloatField):
        return (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else None
        )
    if isinstance(column, models.DateTimeField):
        if isinstance(value, datetime):
            return value
        return parse_datetime(value) if isinstance(value, str) else None
    if isinstance(column, (models.CharField, models.TextField)):
        return value if isinstance(value, str) else str(value)
    return value


class Projector:
    """Keeps projection rows of one schema equal to the document."""

    def project(
        self,
        datastore: Datastore,
        doc: Doc,
        touched: set[tuple[str, str]],
        changes: Sequence[Sequence[Change]] | None = None,
    ) -> None:
        """Bring the rows of ``touched`` records up to ``doc``. ``changes``: each committed
        transaction's changes, in commit order, for projectors that follow them (so a commit
        costs what it changed); None when unknown, and the projector must find out itself."""
        raise NotImplementedError

    def rebuild(self, datastore: Datastore, doc: Doc) -> None:
        """Project everything from scratch (used after a restore and by checks)."""
        raise NotImplementedError


class TableProjector(Projector):
    """Projects table records onto ``ProjectedRecord`` models, one model per table."""

    def __init__(self, models_by_table: dict[str, type[ProjectedRecord]]):
        self.models_by_table = models_by_table

    def columns(self, model: type[ProjectedRecord]) -> list[models.Field]:
        skip = {"id", "datastore", "record_id"}
        return [f for f in model._meta.concrete_fields if f.name not in skip]

    def values(self, model: type[ProjectedRecord], record: Map) -> dict[str, Any]:
        return {
            column.name: _column_value(column, jsonable(record.get(column.name)))
            for column in self.columns(model)
        }

    def project(
        self,
        datastore: Datastore,
        doc: Doc,
        touched: set[tuple[str, str]],
        changes: Sequence[Sequence[Change]] | None = None,
    ) -> None:
        """A few queries per table per batch, not per record. With ``changes``, records whose
        fields changed get one UPDATE of just those columns, without reading their rows first;
        records added, replaced or removed (and rows that turn out to be missing) are read and
        written in bulk."""
        by_table: dict[str, list[str]] = {}
        fields: dict[tuple[str, str], set[str]] = {}
        if changes is None:
            whole = touched
        else:
            whole = set()
            for change in (change for batch in changes for change in batch):
                if change.root not in self.models_by_table:
                    continue
                if not change.path:  # a record added, replaced or removed
                    whole.add((change.root, str(change.key)))
                    continue
                name = change.path[1] if len(change.path) > 1 else change.key
                fields.setdefault((change.root, str(change.path[0])), set()).add(str(name))
        for table, record_id in whole:
            if table in self.models_by_table:
                by_table.setdefault(table, []).append(record_id)
        missing = self._update_fields(
            datastore, doc, {key: names for key, names in fields.items() if key not in whole}
        )
        for table, record_id in missing:
            by_table.setdefault(table, []).append(record_id)
        for table, record_ids in by_table.items():
            self._project_table(datastore, doc.get(table, type=Map), table, record_ids)

    def _update_fields(
        self, datastore: Datastore, doc: Doc, fields: dict[tuple[str, str], set[str]]
    ) -> list[tuple[str, str]]:
        """One UPDATE statement (executemany) per table and set of changed columns; returns the
        records whose row was not there (projected the slow way)."""
        groups: dict[tuple[str, tuple[str, ...]], list[tuple[str, list[Any]]]] = {}
        database = connections[DEFAULT_DB_ALIAS]  # once: each read through the proxy looks it up
        for (table, record_id), names in fields.items():
            model = self.models_by_table[table]
            record = doc.get(table, type=Map).get(record_id)
            if not isinstance(record, Map):
                continue  # removed later in the batch: its record-level change handles it
            columns = tuple(c.name for c in self.columns(model) if c.name in names)
            if not columns:
                continue
            values = [
                model._meta.get_field(name).get_db_prep_save(
                    _column_value(model._meta.get_field(name), jsonable(record.get(name))),
                    database,
                )
                for name in columns
            ]
            groups.setdefault((table, columns), []).append((record_id, values))
        missing: list[tuple[str, str]] = []
        for (table, columns), rows in groups.items():
            model = self.models_by_table[table]
            meta, quote = model._meta, database.ops.quote_name
            sets = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in columns)
            sql = (
                f"UPDATE {quote(meta.db_table)} SET {sets} "
                f"WHERE {quote(meta.get_field('datastore').column)} = %s "
                f"AND {quote(meta.get_field('record_id').column)} = %s"
            )
            with database.cursor() as cursor:
                if len(rows) == 1:
                    cursor.execute(sql, [*rows[0][1], datastore.pk, rows[0][0]])
                else:
                    cursor.executemany(
                        sql, [[*values, datastore.pk, record_id] for record_id, values in rows]
                    )
                changed = cursor.rowcount
            if changed != len(rows):  # some rows missing: let the slow way find which
                missing.extend((table, record_id) for record_id, _ in rows)
        return missing

    def _project_table(
        self, datastore: Datastore, records: Map, table: str, record_ids: list[str]
    ) -> None:
        model = self.models_by_table[table]
        columns = [column.name for column in self.columns(model)]
        existing = {
            row.record_id: row
            for row in fetch_all(model, datastore=datastore.pk, record_id=record_ids)
        }
        created, updated, deleted = [], [], []
        for record_id in record_ids:
            record = records.get(record_id)
            row = existing.get(record_id)
            if not isinstance(record, Map):
                if row is not None:
                    deleted.append(record_id)
                continue
            values = self.values(model, record)
            if row is None:
                created.append(model(datastore=datastore, record_id=record_id, **values))
            elif any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                updated.append(row)
        if deleted:
            model.objects.filter(datastore=datastore, record_id__in=deleted).delete()
        if created:
            model.objects.bulk_create(created)
        if updated and columns:
            model.objects.bulk_update(updated, columns)

    def rebuild(self, datastore: Datastore, doc: Doc) -> None:
        for table, model in self.models_by_table.items():
            model.objects.filter(datastore=datastore).delete()
            records = doc.get(table, type=Map)
            model.objects.bulk_create(
                model(datastore=datastore, record_id=record_id, **self.values(model, record))
                for record_id, record in records.items()
                if isinstance(record, Map)
            )


_projectors: dict[str, Projector] = {}


def register_projector(schema_name: str, projector: Projector) -> Projector:
    _projectors[schema_name] = projector
    return projector


def get_projector(schema_name: str) -> Projector | None:
    return _projectors.get(schema_name)


def projected_models() -> Iterable[type[models.Model]]:
    for projector in _projectors.values():
        if isinstance(projector, TableProjector):
            yield from projector.models_by_table.values()
