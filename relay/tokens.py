"""API tokens: made, found and replaced by their key, which is never stored.

The database keeps ``sha256(key)`` (``relay.models.ApiToken``); a key is shown once, when it is
made (``manage.py create_token``, ``create_bridge_token``), and a lost one is replaced, never
read back. Keys made before tokens were hashed (REST framework's 40 hexadecimal characters)
were hashed in place by ``relay/migrations/0002_api_tokens.py`` and keep working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.contrib.auth import get_user_model

from relay.models import ApiToken
from tables.read_sql import fetch_one

PREFIX = 8  # characters of the key kept, to tell tokens apart in the admin and the commands
MAX_KEY_LENGTH = 256  # no key is longer; anything longer is refused before it is hashed


def new_key() -> str:
    """A key of 256 random bits (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def token_for_key(key: str) -> ApiToken | None:
    """The token whose key this is (its user loaded), or None. The lookup is by digest, so
    the time it takes says nothing about any stored key; the digest is compared again in
    constant time all the same. Read with ``tables.read_sql``: every request does this."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    wanted = digest(key)
    token = fetch_one(ApiToken, digest=wanted)
    if token is None or not hmac.compare_digest(token.digest, wanted):
        return None
    user = fetch_one(get_user_model(), pk=token.user_id)
    if user is None:
        return None
    token.user = user  # cached on the token, as select_related would have it
    return token


def issue(user, *, label: str = "", replace: bool = False) -> ApiToken:
    """A new token for ``user`` (its key on ``.key``, this once); ``replace`` revokes the
    user's other tokens in the same transaction."""
    from django.db import transaction

    with transaction.atomic():
        if replace:
            ApiToken.objects.filter(user=user).delete()
        return ApiToken.objects.create(user=user, label=label)
