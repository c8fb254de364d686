"""The todo app: the canonical example of an app declaring its own datastore schema."""

from tables.schema import Table, TableSchema, list_, register, text

TODO = TableSchema(
    "todo",
    doc="A todo list: items with a title and a done flag, and lists ordering them.",
    tables=[
        Table("items", {"title": text(), "done": register("boolean", nullable=False)}),
        Table(
            "lists",
            {"title": text(), "items": list_(doc="Item ids, in display order.")},
        ),
    ],
)
