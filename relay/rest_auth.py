"""REST framework authentication: an API token, which a bridge's token extends with the Jupyter
user it acts for (``X-Jupyter-User``; decided by ``relay.identity``).

First in ``DEFAULT_AUTHENTICATION_CLASSES`` in place of REST framework's ``TokenAuthentication``,
which it is, so a request without credentials still gets 401 with ``WWW-Authenticate: Token``;
keys are looked up by their digest (``relay.tokens``), never stored.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.request import Request

from relay.identity import HEADER, IdentityRefused, MayNotActForOthers, resolve_acting_user
from relay.tokens import token_for_key

META_KEY = "HTTP_" + HEADER.upper().replace("-", "_")


class IdentityError(exceptions.APIException):
    """The refusal as REST framework raises it (``rest_framework.views`` imports this module
    through its settings, so ``tables.api.errors``, which imports the views, cannot be used)."""

    def __init__(self, refusal: IdentityRefused):
        self.status_code = refusal.status
        super().__init__(str(refusal), refusal.code)


class TokenOrJupyterUserAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``; with ``X-Jupyter-User``, the request runs as the Django
    user mapped to that Jupyter user (the token's user must be allowed to act for others).

    The header from anyone else is refused, never ignored: a cookie session 403
    ``may-not-act-for-others``, no credentials 401.
    """

    def authenticate_credentials(self, key: str):
        """The user of the token whose key this is (keys are stored as digests, never read)."""
        token = token_for_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate(self, request: Request):
        authenticated = super().authenticate(request)
        header = request.META.get(META_KEY)
        if header is None:
            return authenticated
        if authenticated is None:
            session_user = getattr(request._request, "user", None)
            if session_user is not None and session_user.is_authenticated:
                raise IdentityError(
                    MayNotActForOthers(
                        f"a session may not act for Jupyter users ({HEADER}); only a bridge's "
                        "token may"
                    )
                )
            raise exceptions.NotAuthenticated(f"{HEADER} needs a bridge's API token")
        token_user, token = authenticated
        try:
            return resolve_acting_user(token_user, header), token
        except IdentityRefused as error:
            raise IdentityError(error) from None
