"""Projection of todo datastores: typed rows the ORM can query, kept equal to the documents."""

from django.db import models

from tables.projection import ProjectedRecord


class TodoItem(ProjectedRecord):
    title = models.TextField(default="", blank=True)
    done = models.BooleanField(default=False)

    class Meta(ProjectedRecord.Meta):
        pass


class TodoList(ProjectedRecord):
    title = models.TextField(default="", blank=True)
    items = models.JSONField(default=list, blank=True)

    class Meta(ProjectedRecord.Meta):
        pass
