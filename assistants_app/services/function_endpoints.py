"""Function endpoints (staff-only, edited in the assistant admin): what a valid one is, and which of
an assistant's functions have none.

The engine calls them (tools/function_endpoints); this module only judges the configuration, so the
admin can show every problem next to its field before anything is saved.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from assistants_app.models import Assistant, FunctionEndpoint
from assistants_app.tools.function_endpoints import guard

from . import assistants

MAX_TIMEOUT_SECONDS = 120.0
MAX_RESPONSE_BYTES = 1024 * 1024
ENV_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Set by the HTTP client itself, or meaningless per request: a configured value would break the
# request or smuggle another one.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "accept-encoding",
        "proxy-authorization",
        "proxy-connection",
    }
)


def function_names(tools: Iterable[Mapping[str, Any]] | None) -> list[str]:
    return [
        str(t["function"]["name"])
        for t in tools or []
        if t.get("type") == "function" and isinstance(t.get("function"), Mapping)
    ]


def url_problems(url: str) -> list[str]:
    if len(url) > 2000:
        return ["The URL is longer than 2000 characters."]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"Not a valid URL ({exc})."]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["Use an http:// or https:// URL with a host name."]
    problems = []
    if parts.username is not None or parts.password is not None:
        problems.append(
            "Put no user name or password in the URL (it is stored in the database): send a header "
            "whose value comes from an environment variable instead."
        )
    if parts.fragment:
        problems.append("Remove the #fragment: it is never sent to the server.")
    if port == 0:
        problems.append("Port 0 is not a port.")
    problems += _address_problems(parts.hostname)
    return problems


def _address_problems(host: str) -> list[str]:
    """A literal address the call would refuse (a host name is resolved when the call is made)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return []
    try:
        policy = guard.policy_for(settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE)
    except ValueError as exc:
        return [f"FUNCTION_ENDPOINTS_ALLOWED_PRIVATE is invalid: {exc}."]
    if policy.allows(host, ip):
        return []
    return [
        f"{host} is not a public address: calls to it are refused unless the server's "
        "FUNCTION_ENDPOINTS_ALLOWED_PRIVATE setting lists it."
    ]


def header_problems(header_env: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, variable in header_env.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
            problems.append(f"{name!r} is not a header name.")
        elif name.lower() in RESERVED_HEADERS:
            problems.append(f"The {name} header is set by the server; it cannot be configured.")
        if not isinstance(variable, str) or not ENV_VAR_RE.fullmatch(variable):
            problems.append(
                f"{name}: {variable!r} is not an environment variable name. Give the NAME of a variable "
                "holding the value, never the value itself."
            )
    return problems


def endpoint_problems(
    *,
    functions: Iterable[str],
    function_name: str,
    url: str,
    method: str,
    header_env: Mapping[str, Any],
    timeout_seconds: float | None,
    max_response_bytes: int | None,
) -> dict[str, list[str]]:
    """Every problem with one endpoint's configuration, by field ({} when it is valid)."""
    found: dict[str, list[str]] = {}

    def add(field: str, problems: list[str]) -> None:
        if problems:
            found.setdefault(field, []).extend(problems)

    names = list(functions)
    if function_name not in names:
        listed = ", ".join(names) if names else "none yet"
        add(
            "function_name",
            [f"This assistant has no function named {function_name!r} (its functions: {listed})."],
        )
    add("url", url_problems(url))
    if method not in FunctionEndpoint.Method.values:
        add("method", [f"Use one of {', '.join(FunctionEndpoint.Method.values)}."])
    add("header_env", header_problems(header_env))
    if timeout_seconds is not None and not 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS:
        add("timeout_seconds", [f"Give more than 0 and at most {MAX_TIMEOUT_SECONDS:g} seconds."])
    if max_response_bytes is not None and not 1 <= max_response_bytes <= MAX_RESPONSE_BYTES:
        add("max_response_bytes", [f"Give 1 to {MAX_RESPONSE_BYTES} bytes."])
    return found


def functions_without_endpoint(assistant: Assistant) -> list[str]:
    served = set(FunctionEndpoint.objects.filter(assistant=assistant).values_list("function_name", flat=True))
    return [name for name in function_names(assistant.tools) if name not in served]


def chat_dead_ends(assistant: Assistant) -> list[str]:
    """The functions of a chat-visible assistant that nothing answers: in the chat, a reply that
    calls one ends at once with an error (runs/tool_calls.py). [] for other assistants."""
    if not assistants.chat_visible_assistants().filter(pk=assistant.pk).exists():
        return []
    return functions_without_endpoint(assistant)


def chat_dead_end_warning(assistant: Assistant) -> str | None:
    names = chat_dead_ends(assistant)
    if not names:
        return None
    quoted = ", ".join(f"“{n}”" for n in names)
    return (
        f"The chat uses this assistant, and its function tool(s) {quoted} have no endpoint: in the "
        "chat, a reply that calls one ends at once with an error, because nobody there can answer it. "
        "Attach an endpoint under “Function endpoints”, or remove the function."
    )
