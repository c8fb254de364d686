"""manage.py export_openapi [--output spec.json]: the REST API's OpenAPI 3 schema as JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.validation import validate_schema


def openapi_schema() -> dict:
    """The schema of every REST endpoint, as served at /api/schema/ (validated)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    # Through the renderer, so lazy strings and the like become plain JSON.
    return json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))


class Command(BaseCommand):
    help = "Write the REST API's OpenAPI 3 schema as JSON (validated against the OpenAPI spec)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", help="File to write (default: standard output).")
        parser.add_argument(
            "--fail-on-warn", action="store_true", help="Fail if the generator warned."
        )

    def handle(self, *args, output: str | None, fail_on_warn: bool, **options) -> None:
        GENERATOR_STATS.reset()
        try:
            schema = openapi_schema()
        except Exception as error:  # the validator's errors are long; say what failed
            raise CommandError(f"the generated schema is not valid OpenAPI: {error}") from None
        if fail_on_warn and GENERATOR_STATS:
            raise CommandError("the schema generator warned (see above)")
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
            self.stderr.write(f"wrote {output} ({len(schema['paths'])} paths)")
        else:
            self.stdout.write(text, ending="")
