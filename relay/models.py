"""Jupyter users acting through a bridge: who each one is here.

A bridge (a Jupyter Server extension in front of this server) uses one API token, whose user has
the permission ``relay.act_for_jupyter_users``, and names the Jupyter user it acts for on every
request (``X-Jupyter-User``). Each (bridge account, Jupyter username) pair is mapped to a Django
user of its own, so that two bridges' "alice" are two people, and a Jupyter user named like a
Django user ("admin") never becomes that user. See ``relay.identity``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

ACT_FOR_JUPYTER_USERS = "relay.act_for_jupyter_users"


class JupyterIdentity(models.Model):
    bridge = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="bridged_identities",
        help_text="The account whose token acts for this Jupyter user.",
    )
    jupyter_username = models.CharField(max_length=255)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="jupyter_identity",
        help_text="The Django user this Jupyter user is here (created on first use).",
    )
    name = models.CharField(max_length=255, blank=True, default="")
    display_name = models.CharField(max_length=255, blank=True, default="")
    initials = models.CharField(max_length=255, blank=True, default="")
    color = models.CharField(max_length=255, blank=True, default="")
    initial_role = models.CharField(
        max_length=10,
        blank=True,
        default="",
        help_text="The role on the jupyter datastore given once (RTC_BRIDGE_ROLE); 'none' when "
        "none was. Empty: not given yet (no jupyter datastore then).",
    )
    initial_role_given_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Jupyter identity"
        verbose_name_plural = "Jupyter identities"
        ordering = ["bridge_id", "jupyter_username"]
        constraints = [
            models.UniqueConstraint(
                fields=["bridge", "jupyter_username"], name="relay_one_user_per_jupyter_identity"
            )
        ]
        permissions = [
            (
                "act_for_jupyter_users",
                "Can act for Jupyter users (a bridge's token; X-Jupyter-User)",
            )
        ]

    def __str__(self) -> str:
        return f"{self.jupyter_username} via {self.bridge}"


class ApiTokenManager(models.Manager["ApiToken"]):
    def create(self, *, user, label: str = "", **fields) -> ApiToken:
        """A new token for ``user``: only its digest and prefix are stored; the key itself is
        on the returned instance (``.key``) and nowhere else, to be shown once."""
        from relay import tokens

        key = tokens.new_key()
        token = super().create(
            user=user, label=label, digest=tokens.digest(key), prefix=key[: tokens.PREFIX], **fields
        )
        token.key = key
        return token


class ApiToken(models.Model):
    """An API token (``Authorization: Token <key>``), kept as the SHA-256 of its key.

    A database backup hands out no key: the key is random (256 bits), so its plain digest can
    be neither reversed nor guessed, and no secret of the server (``SECRET_KEY``) is involved,
    so rotating that key invalidates no token. ``prefix`` (the key's first characters) is shown
    to tell tokens apart; it is not enough to use one.
    """

    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    label = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    key: str | None = None  # set on a newly created token only

    objects = ApiTokenManager()

    class Meta:
        verbose_name = "API token"
        ordering = ["user_id", "created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
