"""`python -m pecflow.api > openapi.json`: the API's OpenAPI document, generated from the routes
(the repository keeps it as openapi.json; a test checks it is current)."""

from __future__ import annotations

import sys
from typing import Any, cast

from pecflow.api.app import Services, build_app, openapi_document


def document() -> str:
    nothing = cast(Any, None)  # the document needs the routes, not the services behind them
    return openapi_document(build_app(Services(nothing, nothing, nothing))) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
