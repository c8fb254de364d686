from django.apps import AppConfig


class TablesConfig(AppConfig):
    name = "tables"
    verbose_name = "RTC tables"

    def ready(self) -> None:
        # Document layouts ship with the engine.
        from tables import layouts  # noqa: F401
