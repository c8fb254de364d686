from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "relay"
    verbose_name = "Relay"

    def ready(self) -> None:
        from relay.hub import on_committed
        from tables.signals import transactions_committed

        transactions_committed.connect(on_committed, dispatch_uid="relay.hub")
