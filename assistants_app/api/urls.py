"""/v1 routes, generated from the operation table (operations.py)."""

from __future__ import annotations

import re
from collections import defaultdict

from django.urls import URLPattern, URLResolver, path, re_path

from .openapi import OPERATION as OPENAPI_OPERATION
from .operations import OPERATIONS
from .routing import PATH_PARAMETERS, Operation, unknown_url, view_for


def _django_path(openapi_path: str) -> str:
    def converter(match: re.Match[str]) -> str:
        name = match[1]
        return f"<{'path' if name in PATH_PARAMETERS else 'str'}:{name}>"

    return re.sub(r"{(\w+)}", converter, openapi_path.lstrip("/"))


def _patterns(ops: list[Operation]) -> list[URLPattern | URLResolver]:
    grouped: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        grouped[op.path].append(op)
    return [path(_django_path(p), view_for(group), name=group[0].op_id) for p, group in grouped.items()]


urlpatterns: list[URLPattern | URLResolver] = [
    *_patterns([OPENAPI_OPERATION, *OPERATIONS]),
    # Anything else under /v1 is a JSON 404, never Django's HTML page.
    re_path(r"^(?P<rest>.*)$", unknown_url),
]
