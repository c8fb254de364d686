"""Acting for a Jupyter user: the one place that decides who a bridge's request runs as.

A bridge's token (its user has the permission ``relay.act_for_jupyter_users``, granted by
``manage.py create_bridge_token``) sends ``X-Jupyter-User: <ASCII JSON>`` naming the Jupyter
user it acts for. ``resolve_acting_user`` checks the permission, reads the header, and answers
the Django user mapped to (the bridge's account, that Jupyter username), making it on first use:
a plain user (no password, no staff flag, no permission) whose ``first_name`` is the Jupyter
display name, given the role ``RTC_BRIDGE_ROLE`` on the jupyter datastore once. The bridge's own
account gets nothing from this. The REST framework authentication (``relay.rest_auth``) and the
WebSocket middleware (``relay.auth``) both call it, so both ways in answer alike.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from relay.models import JupyterIdentity
from tables.conf import rtc_settings
from tables.models import Datastore, DatastoreRole
from tables.read_sql import fetch_one

HEADER = "X-Jupyter-User"
MAX_HEADER_BYTES = 4096
MAX_FIELD_CHARS = 255
BRIDGE_DATASTORE = "jupyter"
"""The datastore whose role a new Jupyter user is given: ``jupyter_sync.schema.JUPYTER_DATASTORE``
(the layers keep the relay from importing it; a unit test keeps the two equal)."""
NO_ROLE = "none"


class IdentityRefused(Exception):
    """The request may not run as the identity it names: an HTTP status, a WebSocket close code
    and an error code say why."""

    status = 403
    close_code = 4403
    code = "may-not-act-for-others"


class MayNotActForOthers(IdentityRefused):
    pass


class BadIdentity(IdentityRefused):
    status = 400
    close_code = 4400
    code = "bad-identity"


class InactiveIdentity(IdentityRefused):
    code = "inactive-user"


@dataclass(frozen=True)
class JupyterUser:
    """Who the bridge says it acts for (Jupyter Server's identity model)."""

    username: str
    name: str
    display_name: str
    initials: str
    color: str

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name or self.username


_FIELDS = {"username": False, "name": False, "display_name": False, "initials": True, "color": True}
"""The identity's fields, and whether each may be null."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise BadIdentity(f"{HEADER} names a field twice")
    return dict(pairs)


def _refuse_constant(name: str) -> None:
    raise BadIdentity(f"{HEADER} is not JSON: {name} is not a JSON value")


def _check_text(field: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadIdentity(f"{HEADER}: {field} holds a lone surrogate") from None
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise BadIdentity(f"{HEADER}: {field} holds a control character")
    if len(value) > MAX_FIELD_CHARS:
        raise BadIdentity(f"{HEADER}: {field} is longer than {MAX_FIELD_CHARS} characters")
    return value


def parse_identity(value: str) -> JupyterUser:
    """The header's identity; ``BadIdentity`` for anything but ASCII JSON of the agreed shape.

    ``value`` is the header as the server read it (latin-1), so one character is one byte.
    """
    if len(value) > MAX_HEADER_BYTES:
        raise BadIdentity(f"{HEADER} is longer than {MAX_HEADER_BYTES} bytes")
    if not value.isascii():
        raise BadIdentity(f"{HEADER} must be ASCII JSON (json.dumps with ensure_ascii)")
    try:
        data = json.loads(
            value, object_pairs_hook=_no_duplicate_keys, parse_constant=_refuse_constant
        )
    except ValueError as error:  # json.JSONDecodeError included
        raise BadIdentity(f"{HEADER} is not JSON: {error}") from None
    except RecursionError:
        raise BadIdentity(f"{HEADER} is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadIdentity(f"{HEADER} must be a JSON object")
    fields: dict[str, str] = {}
    for field, nullable in _FIELDS.items():
        item = data.get(field)
        if item is None and field != "username" and (nullable or field not in data):
            fields[field] = ""  # left out (or null where null is allowed)
            continue
        if not isinstance(item, str):
            raise BadIdentity(f"{HEADER}: {field} must be a string")
        fields[field] = _check_text(field, item)
    if not fields["username"].strip():
        raise BadIdentity(f"{HEADER}: username must not be empty")
    return JupyterUser(**fields)


def may_act_for_others(user) -> bool:
    """Whether ``user`` was granted ``relay.act_for_jupyter_users`` itself or through a group.

    Explicitly: a superuser, who has every permission in Django's eyes, is not a bridge unless
    made one, so that no token becomes one by accident.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    granted = Permission.objects.filter(
        content_type__app_label="relay", codename="act_for_jupyter_users"
    )
    return granted.filter(Q(user=user) | Q(group__user=user)).exists()


def resolve_acting_user(token_user, header_value: str):
    """The Django user a request of ``token_user`` carrying ``X-Jupyter-User: header_value``
    runs as. Raises ``MayNotActForOthers`` (the token may not act for others: checked first),
    ``BadIdentity`` (the header is malformed) or ``InactiveIdentity`` (an admin deactivated the
    mapped user)."""
    if not may_act_for_others(token_user):
        raise MayNotActForOthers(
            f"this token may not act for Jupyter users ({HEADER}); a bridge's token needs the "
            "permission relay.act_for_jupyter_users (manage.py create_bridge_token)"
        )
    identity = parse_identity(header_value)
    mapping = _mapping(token_user, identity)
    _keep_up_to_date(mapping, identity)
    if not mapping.initial_role:
        _give_initial_role(mapping)
    if not mapping.user.is_active:
        raise InactiveIdentity(f"the account of Jupyter user {identity.username!r} is disabled")
    return mapping.user


# --- the mapping ---------------------------------------------------------------------------------

_NOT_IN_USERNAMES = re.compile(r"[^\w.+-]+")
_MAX_USERNAME = 150


def username_base(jupyter_username: str, bridge_username: str) -> str:
    """A readable Django username for a Jupyter user: ``<jupyter name>@<bridge account>``, in
    the characters Django usernames allow; a number is added when it is taken."""
    slug = _NOT_IN_USERNAMES.sub("-", jupyter_username).strip("-.") or "user"
    bridge = _NOT_IN_USERNAMES.sub("-", bridge_username).strip("-.") or "bridge"
    return f"{slug[:80]}@{bridge[:50]}"


def _new_user(identity: JupyterUser, bridge):
    User = get_user_model()
    base = username_base(identity.username, bridge.get_username())
    for number in range(1, 1000):
        candidate = base if number == 1 else f"{base}-{number}"
        if User.objects.filter(username=candidate).exists():
            continue
        try:
            with transaction.atomic():
                # No password: nobody logs in as them; they come only through their bridge.
                return User.objects.create_user(
                    username=candidate[:_MAX_USERNAME],
                    first_name=identity.shown_name[:150],
                )
        except IntegrityError:
            continue  # taken meanwhile
    raise IntegrityError(f"no free username for {identity.username!r}")


def _mapping(bridge, identity: JupyterUser) -> JupyterIdentity:
    lookup = {"bridge": bridge, "jupyter_username": identity.username}
    # Every request a bridge makes for someone: read with read_sql (two statements, not a join
    # the ORM builds for ten times what it takes to run).
    found = fetch_one(JupyterIdentity, bridge=bridge.pk, jupyter_username=identity.username)
    user = fetch_one(get_user_model(), pk=found.user_id) if found is not None else None
    if found is not None and user is not None:
        found.user = user
        return found
    try:
        with transaction.atomic():
            user = _new_user(identity, bridge)
            return JupyterIdentity.objects.create(
                user=user,
                name=identity.name,
                display_name=identity.display_name,
                initials=identity.initials,
                color=identity.color,
                **lookup,
            )
    except IntegrityError:
        # Made by a concurrent first request of the same person.
        return JupyterIdentity.objects.select_related("user").get(**lookup)


def _keep_up_to_date(mapping: JupyterIdentity, identity: JupyterUser) -> None:
    """Names and colours follow Jupyter's; the user's first name is what history shows."""
    shown = {
        "name": identity.name,
        "display_name": identity.display_name,
        "initials": identity.initials,
        "color": identity.color,
    }
    changed = [field for field, value in shown.items() if getattr(mapping, field) != value]
    if changed:
        for field in changed:
            setattr(mapping, field, shown[field])
        mapping.save(update_fields=[*changed, "updated_at"])
    first_name = identity.shown_name[:150]
    if mapping.user.first_name != first_name:
        mapping.user.first_name = first_name
        mapping.user.save(update_fields=["first_name"])


def _give_initial_role(mapping: JupyterIdentity) -> None:
    """``RTC_BRIDGE_ROLE`` on the jupyter datastore, once: when the mapping is made, or on the
    first request after the datastore exists. Recorded, so that an admin's later change or
    removal of the role is never undone."""
    datastore = Datastore.objects.filter(name=BRIDGE_DATASTORE).first()
    if datastore is None:
        return
    role = rtc_settings.BRIDGE_ROLE
    with transaction.atomic():
        claimed = JupyterIdentity.objects.filter(pk=mapping.pk, initial_role="").update(
            initial_role=role, initial_role_given_at=timezone.now()
        )
        if claimed and role != NO_ROLE:
            # A role someone gave meanwhile stands.
            DatastoreRole.objects.get_or_create(
                datastore=datastore, user=mapping.user, defaults={"role": role}
            )
    mapping.refresh_from_db(fields=["initial_role", "initial_role_given_at"])
