"""The supernode's identity: a service account, its token, the jupyter datastore, the lease."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.utils import timezone

from jupyter_sync.models import SupernodeLease
from jupyter_sync.schema import JUPYTER_DATASTORE
from relay import tokens
from tables.models import Datastore
from tables.service import create_datastore

SERVICE_USERNAME = "supernode"


def ensure_service_account(username: str = SERVICE_USERNAME) -> str:
    """Create (first run) or find the service account; return a new API token of its own.

    Keys are stored as digests, so each run gets a token of its own (a standby supernode's
    does not replace the running one's), revoked when it stops (``revoke_token``)."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username)
    permission = Permission.objects.get(
        codename="write_server_state", content_type__app_label="tables"
    )
    user.user_permissions.add(permission)
    return tokens.issue(user, label="run_supernode").key


def revoke_token(key: str) -> None:
    """Delete the token a run was given, as it stops."""
    token = tokens.token_for_key(key)
    if token is not None:
        token.delete()


def ensure_jupyter_datastore(username: str = SERVICE_USERNAME) -> Datastore:
    """The jupyter datastore, owned by the service account (created on first run)."""
    owner = get_user_model().objects.get(username=username)
    try:
        return Datastore.objects.get(name=JUPYTER_DATASTORE)
    except Datastore.DoesNotExist:
        pass
    try:
        return create_datastore(JUPYTER_DATASTORE, "jupyter", owner=owner)
    except IntegrityError:  # another supernode created it meanwhile
        return Datastore.objects.get(name=JUPYTER_DATASTORE)


def acquire_lease(name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False while someone else holds it."""
    now = timezone.now()
    expires = now + timedelta(seconds=seconds)
    with transaction.atomic():
        lease = SupernodeLease.objects.select_for_update().filter(name=name).first()
        if lease is None:
            try:
                with transaction.atomic():
                    SupernodeLease.objects.create(name=name, holder=holder, expires_at=expires)
                return True
            except IntegrityError:
                return False
        if lease.holder != holder and lease.expires_at > now:
            return False
        lease.holder = holder
        lease.expires_at = expires
        lease.save(update_fields=["holder", "expires_at"])
        return True


def release_lease(name: str, holder: str) -> None:
    SupernodeLease.objects.filter(name=name, holder=holder).delete()
