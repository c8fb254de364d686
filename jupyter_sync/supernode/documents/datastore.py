"""A document's own datastore, made by the supernode (its owner) when it first opens the file."""

from __future__ import annotations

from jupyter_sync.supernode.documents.document import DocumentError
from relay.tokens import token_for_key
from tables.models import Datastore
from tables.service import DatastoreExists, create_datastore


def ensure_document_datastore(name: str, schema: str, token: str, jupyter_datastore: str) -> bool:
    """Create the datastore ``name`` for the supernode (owner) unless it exists; its roles follow
    the jupyter datastore's (``roles_from``), so a later grant there reaches the document. True
    when it was created."""
    created = False
    datastore = Datastore.objects.filter(name=name).first()
    if datastore is None:
        found = token_for_key(token)
        if found is None:
            raise DocumentError("the supernode's token was revoked")
        owner = found.user
        try:
            datastore = create_datastore(name, schema, owner=owner)
            created = True
        except DatastoreExists:
            datastore = Datastore.objects.get(name=name)
    if datastore.schema != schema:
        raise DocumentError(f"datastore {name!r} holds a {datastore.schema}, not a {schema}")
    source = Datastore.objects.get(name=jupyter_datastore)
    if datastore.roles_from_id != source.pk:
        datastore.roles_from = source
        datastore.save(update_fields=["roles_from"])
    return created
