"""manage.py create_bridge_token <username>: the API token of a bridge (a Jupyter Server
extension acting for its Jupyter users), its account made and allowed to act for others. The
token is shown once, when made."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError

from relay.identity import may_act_for_others
from relay.management.commands.create_token import issue_once


class Command(BaseCommand):
    help = (
        "Make (or reuse) a bridge's service account, allow it to act for Jupyter users "
        "(permission relay.act_for_jupyter_users, header X-Jupyter-User) and print its API token. "
        "The account gets no datastore role: each Jupyter user acts as a user of their own. "
        "Only the token's digest is stored: it is shown this once; --rotate replaces it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", help="The bridge's account (made if it does not exist).")
        parser.add_argument(
            "--rotate", action="store_true", help="Replace an existing token with a new one."
        )

    def handle(self, *args, username: str, rotate: bool, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(username)
        except User.DoesNotExist:
            user = User.objects.create_user(username=username)  # no password: a token only
            self.stderr.write(f"made the account {username!r}")
        if user.is_superuser or user.is_staff:
            raise CommandError(
                f"{username!r} is a staff account; a bridge needs an account of its own"
            )
        if hasattr(user, "jupyter_identity"):
            raise CommandError(f"{username!r} is a Jupyter user's account, not a bridge's")
        if not may_act_for_others(user):
            user.user_permissions.add(
                Permission.objects.get(
                    content_type__app_label="relay", codename="act_for_jupyter_users"
                )
            )
            self.stderr.write(f"{username!r} may now act for Jupyter users")
        self.stdout.write(issue_once(user, rotate))
