"""A Jupyter identity provider with one token per person, for JupyterLab in end-to-end tests.

Jupyter's own token login makes every browser an "Anonymous <moon>" with a random username, so
a test could not tell in advance who is who, nor grant one of them a role. Here each person has
a token of their own (``LAB_PEOPLE``: JSON ``{token: {"username", "name", "display_name",
"initials", "color"}}`` in the server's environment); opening ``/lab?token=<theirs>`` logs that
browser in as them, and Jupyter's login cookie keeps them so. The server's own token
(``IdentityProvider.token``, what the supernode uses) still works as Jupyter's usual one.

Loaded by the Jupyter Server process (``--ServerApp.identity_provider_class=
tests.support.lab_people.PeopleIdentityProvider``, with the repository on ``PYTHONPATH``): it
imports neither Django nor pytest.
"""

from __future__ import annotations

import json
import os
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User

ENVIRONMENT = "LAB_PEOPLE"


def people_from_environment() -> dict[str, dict[str, Any]]:
    return json.loads(os.environ.get(ENVIRONMENT) or "{}")


class PeopleIdentityProvider(IdentityProvider):
    """Jupyter's token identity provider, where some tokens name a person."""

    async def get_user_token(self, handler: Any) -> User | None:
        person = people_from_environment().get(self.get_token(handler) or "")
        if person is not None:
            return User(**person)
        return await super().get_user_token(handler)
