from django.apps import AppConfig


class TodoConfig(AppConfig):
    name = "todo"
    verbose_name = "Todo (example app)"

    def ready(self) -> None:
        from tables.projection import TableProjector, register_projector
        from tables.schema import register_schema
        from todo.models import TodoItem, TodoList
        from todo.schema import TODO

        register_schema(TODO)
        register_projector(TODO.name, TableProjector({"items": TodoItem, "lists": TodoList}))
