"""The API's JSON parser: DRF's, plus clean 400s for input nested too deep to decode and for
text that is not Unicode (a lone UTF-16 surrogate escape such as ``"\\ud800"``), which no
database column or later encoder accepts."""

from __future__ import annotations

import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            data = super().parse(_Replay(raw), media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        if _SURROGATE_ESCAPE.search(raw):
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise ParseError(
                    "JSON parse error - a string holds a lone UTF-16 surrogate, which is not Unicode"
                ) from None
        return data


class _Replay:
    """The body read once, handed to DRF's parser as a stream."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, *args) -> bytes:
        data, self._data = self._data, b""
        return data
