"""manage.py grant <datastore> <username> <role>: give a user a role on a datastore."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tables.models import Role
from tables.permissions import grant, revoke
from tables.service import DatastoreNotFound, get_datastore


class Command(BaseCommand):
    help = "Give a user a role (owner, editor, viewer) on a datastore, or 'none' to remove it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("datastore")
        parser.add_argument("username")
        parser.add_argument("role", choices=[*Role.values, "none"])

    def handle(self, *args, datastore: str, username: str, role: str, **options) -> None:
        try:
            target = get_datastore(datastore)
        except DatastoreNotFound as error:
            raise CommandError(str(error)) from None
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        if role == "none":
            revoke(target, user)
            self.stdout.write(f"{username} has no role on {datastore} any more")
        else:
            grant(target, user, role)
            self.stdout.write(f"{username} is now {role} of {datastore}")
