"""manage.py create_token <username>: make an API token for a user and print it, once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from relay.models import ApiToken
from relay.tokens import issue


class Command(BaseCommand):
    help = (
        "Make an API token for a user (with --create-user, the user too) and print it. Only its "
        "digest is stored: the token is shown this once; --rotate replaces a lost one."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user if it does not exist."
        )
        parser.add_argument(
            "--rotate", action="store_true", help="Replace the user's tokens with a new one."
        )

    def handle(self, *args, username: str, create_user: bool, rotate: bool, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get_by_natural_key(username)
        except User.DoesNotExist:
            if not create_user:
                raise CommandError(
                    f"no user named {username!r} (use --create-user to create one)"
                ) from None
            user = User.objects.create_user(username=username)
        self.stdout.write(issue_once(user, rotate))


def issue_once(user, rotate: bool) -> str:
    """A new key for ``user``; without ``rotate``, refused when the user has a token already
    (stored keys cannot be shown again, and a second token nobody asked for is one more to
    leak)."""
    existing = ApiToken.objects.filter(user=user).first()
    if existing is not None and not rotate:
        raise CommandError(
            f"{user.get_username()!r} has a token already ({existing.prefix}..., made "
            f"{existing.created_at:%Y-%m-%d %H:%M} UTC); tokens are shown only when made: "
            "use --rotate to replace it with a new one"
        )
    return issue(user, label="manage.py", replace=True).key
