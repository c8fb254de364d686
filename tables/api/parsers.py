"""Request bodies: JSON, with a clear 400 for JSON nested deeper than Python's parser goes.

REST framework's parser answers malformed JSON with 400 but lets ``RecursionError`` (JSON nested
a few thousand levels deep) through as a 500; here it is the same 400 ``parse-error``.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deep") from None
