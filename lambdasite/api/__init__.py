"""The API toolkit every app's ``api/`` builds on (and no app's ``api/`` imports another's):

- ``fields``: strict fields (a string is only a string, an integer only an integer, times with an
  offset, storable ``args``, qualifiers, webhook URLs) and ``StrictSerializer``, the object that
  refuses unknown fields;
- ``query``: query strings validated by serializers (``QueryFilter``), ``?wait=`` and line paging;
- ``schema``: the error envelope's schema and the answers an operation may give, for the OpenAPI;
- ``contract``: one endpoint, two transports. A handler takes a ``Call`` (the caller and the
  parsed request) and returns a ``Reply`` or raises an ``ApplicationError``; the DRF view and the
  fast path (``lambdasite/fasthttp.py``) both call it, so every rule and every refusal is
  computed in one place."""
