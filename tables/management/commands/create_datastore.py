"""manage.py create_datastore <name> --schema <schema> [--owner <user>]"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tables.schema import UnknownSchema, all_schemas
from tables.service import DatastoreExists, create_datastore


class Command(BaseCommand):
    help = "Create an empty datastore with the given schema."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--schema", required=True, help=f"One of: {', '.join(all_schemas())}.")
        parser.add_argument("--owner", help="Username of the owner (optional).")

    def handle(self, *args, name: str, schema: str, owner: str | None, **options) -> None:
        user = None
        if owner:
            try:
                user = get_user_model().objects.get_by_natural_key(owner)
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {owner!r}") from None
        try:
            datastore = create_datastore(name, schema, owner=user)
        except (UnknownSchema, DatastoreExists) as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            messages = [m for ms in error.message_dict.values() for m in ms]
            raise CommandError(" ".join(messages)) from None
        self.stdout.write(f"created datastore {datastore.name!r} (schema {datastore.schema})")
