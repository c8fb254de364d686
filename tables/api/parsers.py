"""Request bodies: JSON, refused with a clear 400 ``too-deep`` when nested past what any write
could store.

Python's JSON parser recurses: a body nested a few thousand levels deep made REST framework's
parser raise ``RecursionError`` (a 500). The body's nesting is measured first, without parsing
it, against ``RTC_MAX_NESTING`` plus the levels a request's own fields add
(``tables.nesting.JSON_ENVELOPE_LEVELS``): anything deeper holds a value the write path would
refuse as ``too-deep`` anyway. This parser is REST framework's default for every view.
"""

from __future__ import annotations

import io

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from tables.nesting import json_nesting_exceeds, max_json_nesting


def too_deep(limit: int) -> ParseError:
    """A 400 with the code the write path gives a too-deep update (imports no view: REST
    framework imports this module while it builds its views)."""
    return ParseError(f"the JSON body nests more than {limit} levels deep", "too-deep")


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        limit = max_json_nesting()
        if json_nesting_exceeds(body, limit):
            raise too_deep(limit)
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:  # a limit set past what Python's parser can follow
            raise too_deep(limit) from None
