"""Signals of the tables engine. Sent only after the database transaction has committed."""

from django.dispatch import Signal

# kwargs: datastore (Datastore), transactions (list[tables.service.Committed])
transactions_committed = Signal()
