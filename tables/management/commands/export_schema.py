"""manage.py export_schema [name ...]: the schemas as JSON, for clients."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from tables.schema import UnknownSchema, all_schemas, get_schema


class Command(BaseCommand):
    help = "Print registered schemas as JSON (all of them, or the ones named)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*")

    def handle(self, *args, names: list[str], **options) -> None:
        try:
            schemas = [get_schema(name) for name in names] or list(all_schemas().values())
        except UnknownSchema as error:
            raise CommandError(str(error)) from None
        exported = {schema.name: schema.to_json() for schema in schemas}
        self.stdout.write(json.dumps(exported, indent=2, sort_keys=True))
