"""What an assistant or a run may be given as tools, tool_choice and tool_resources.

One validator for the API and the admin's assistant form: the API raises the first problem as a 400
naming the parameter, the admin shows every problem next to the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistants_app.errors import InvalidRequest
from assistants_app.tools import hosted

from . import lookups, vector_stores

FUNCTION_NAME_PATTERN = r"[a-zA-Z0-9_-]{1,64}"
FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})
MAX_DESCRIPTION = 1024
# Hosted tools are offered to the model under these names: a function with one of them would be
# ambiguous to the model, and its calls would be executed as the hosted tool.
RESERVED_FUNCTION_NAMES = frozenset({"file_search", "code_interpreter"})


@dataclass(frozen=True)
class Problem:
    index: int  # of the tool in the list
    param: str  # e.g. tools[2].function.name
    message: str  # starts lower-case: callers put the tool's name or the param in front
    code: str | None = None


def check_json_schema(schema: Any, where: str) -> list[str]:
    """Problems with `schema` as a JSON Schema object; [] when it is one."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        return [f"{where} must be a JSON object (a JSON Schema), not {type(schema).__name__}."]
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(p) for p in exc.path)
        at = f" at '{path}'" if path else ""
        return [f"{where} is not a valid JSON Schema{at}: {exc.message}"]
    return []


def _function_problems(fn: Mapping[str, Any], index: int, param: str, seen: set[str]) -> list[Problem]:
    at = f"{param}[{index}].function"
    out: list[Problem] = []

    def problem(field: str, message: str, code: str | None = None) -> None:
        out.append(Problem(index, f"{at}.{field}" if field else at, message, code))

    unknown = sorted(set(fn) - FUNCTION_KEYS)
    if unknown:
        problem(
            unknown[0],
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FUNCTION_KEYS))}.",
            "unknown_parameter",
        )
    name = fn.get("name")
    if not isinstance(name, str) or not re.fullmatch(FUNCTION_NAME_PATTERN, name):
        problem("name", "name must be 1-64 characters of letters, digits, '_' or '-'.")
    elif name in RESERVED_FUNCTION_NAMES:
        problem(
            "name",
            f"the name '{name}' is reserved for the hosted tool of that name.",
            "reserved_function_name",
        )
    elif name in seen:
        problem("name", f"duplicate function name '{name}'.")
    else:
        seen.add(name)
    description = fn.get("description")
    if "description" in fn and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        problem("description", f"description must be a string of at most {MAX_DESCRIPTION} characters.")
    if "strict" in fn and not isinstance(fn["strict"], bool):
        problem("strict", "strict must be true or false.")
    if "parameters" in fn:
        params = fn["parameters"]
        found = check_json_schema(params, "parameters")
        if not found and "type" in params and params["type"] != "object":
            # The model passes arguments as one JSON object, so the top level must describe one.
            found = ['parameters must describe an object ("type": "object").']
        for message in found:
            problem("parameters", message)
    return out


def tool_problems(tools: Sequence[Mapping[str, Any]], param: str = "tools") -> list[Problem]:
    """Every problem with a list of tool definitions, in order."""
    out: list[Problem] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "function":
            fn = tool.get("function")
            if not isinstance(fn, Mapping):
                out.append(Problem(i, f"{param}[{i}].function", "function must be an object."))
                continue
            out += _function_problems(fn, i, param, seen)
        elif not isinstance(kind, str) or hosted.get(kind) is None:
            out.append(
                Problem(
                    i,
                    f"{param}[{i}].type",
                    f"the '{kind}' tool is not available on this server.",
                    "unsupported_tool",
                )
            )
    return out


def check_tools(tools: list[dict[str, Any]], param: str = "tools") -> list[dict[str, Any]]:
    problems = tool_problems(tools, param)
    if problems:
        first = problems[0]
        raise InvalidRequest(f"Invalid '{first.param}': {first.message}", param=first.param, code=first.code)
    return tools


def check_tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]]) -> None:
    """A tool_choice must name one of the run's tools; 'required' needs at least one."""
    if isinstance(choice, dict):
        if choice["type"] == "function":
            name = choice["function"]["name"]
            if not any(t.get("type") == "function" and t["function"]["name"] == name for t in tools):
                raise InvalidRequest(
                    f"tool_choice names the function '{name}', which is not among the run's tools.",
                    param="tool_choice.function.name",
                )
        elif not any(t.get("type") == choice["type"] for t in tools):
            raise InvalidRequest(
                f"tool_choice names '{choice['type']}', which is not among the run's tools.",
                param="tool_choice.type",
            )
    elif choice == "required" and not tools:
        raise InvalidRequest("tool_choice 'required' needs at least one tool.", param="tool_choice")


def check_tool_resources(
    user: Any, resources: Mapping[str, Any] | None, param: str = "tool_resources"
) -> dict[str, Any]:
    """The stored form of tool_resources: the user's live files, their unexpired vector stores.

    Inline `vector_stores` are created here, so callers run this inside the transaction that saves
    the assistant or thread.
    """
    if not resources:
        return {}
    out: dict[str, Any] = {}
    ci = resources.get("code_interpreter")
    if ci is not None:
        ids = ci.get("file_ids", [])
        lookups.check_file_ids(user, ids, f"{param}.code_interpreter.file_ids")
        out["code_interpreter"] = {"file_ids": ids}
    fs = resources.get("file_search")
    if fs is not None:
        out["file_search"] = vector_stores.file_search_resources(user, fs, f"{param}.file_search")
    return out


def check_attachment_tools(tools: Sequence[Mapping[str, Any]], param: str) -> None:
    for j, tool in enumerate(tools):
        if hosted.get(tool["type"]) is None:
            raise InvalidRequest(
                f"The '{tool['type']}' tool is not available on this server.",
                param=f"{param}[{j}].type",
                code="unsupported_tool",
            )
