"""JSON Schemas of the objects /v1 returns (the OpenAPI document's components).

They mirror serializers.py. They are checked against real responses by the schemathesis test, so a
field added there without being added here (or the other way round) fails the suite.
"""

from __future__ import annotations

from typing import Any

from assistants_app.models.files import VECTOR_STORE_FILE_STATUSES
from assistants_app.models.run import RunStatus


def nullable(s: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [s, {"type": "null"}]}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
OBJ = {"type": "object"}
TS = INT
METADATA = {"type": "object", "additionalProperties": {"type": "string"}}


def obj(
    props: dict[str, Any],
    *,
    object_name: str | None = None,
    optional: tuple[str, ...] = (),
    closed: bool = False,
) -> dict[str, Any]:
    if object_name is not None:
        props = {**props, "object": {"type": "string", "enum": [object_name]}}
    s: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
    }
    if closed or object_name is not None:
        # API objects list every field they have: one added to serializers.py but not here fails the
        # schemathesis test instead of going undocumented.
        s["additionalProperties"] = False
    return s


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def listing(item: str) -> dict[str, Any]:
    return obj(
        {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": ref(item)},
            "first_id": nullable(STR),
            "last_id": nullable(STR),
            "has_more": BOOL,
        }
    )


def deleted(name: str) -> dict[str, Any]:
    return obj({"id": STR, "deleted": BOOL}, object_name=name)


TOOL = {
    "type": "object",
    "properties": {"type": {"type": "string", "enum": ["function", "code_interpreter", "file_search"]}},
    "required": ["type"],
}
RESPONSE_FORMAT = {"anyOf": [{"type": "string", "enum": ["auto"]}, OBJ]}
USAGE = nullable(obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT}))
CONTENT_PART = {
    "type": "object",
    "properties": {"type": {"type": "string", "enum": ["text", "image_file", "image_url", "refusal"]}},
    "required": ["type"],
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "message": STR,
                    "type": STR,
                    "param": nullable(STR),
                    "code": nullable(STR),
                }
            )
        }
    ),
    "Assistant": obj(
        {
            "id": STR,
            "created_at": TS,
            "name": nullable(STR),
            "description": nullable(STR),
            "model": STR,
            "instructions": nullable(STR),
            "tools": {"type": "array", "items": TOOL},
            "tool_resources": nullable(OBJ),
            "metadata": METADATA,
            "temperature": nullable(NUM),
            "top_p": nullable(NUM),
            "response_format": RESPONSE_FORMAT,
        },
        object_name="assistant",
    ),
    "Thread": obj(
        {"id": STR, "created_at": TS, "metadata": METADATA, "tool_resources": nullable(OBJ)},
        object_name="thread",
    ),
    "Message": obj(
        {
            "id": STR,
            "created_at": TS,
            "thread_id": STR,
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"type": "array", "items": CONTENT_PART},
            "attachments": nullable({"type": "array", "items": OBJ}),
            "status": {"type": "string", "enum": ["in_progress", "incomplete", "completed"]},
            "incomplete_details": nullable(OBJ),
            "completed_at": nullable(TS),
            "incomplete_at": nullable(TS),
            "assistant_id": nullable(STR),
            "run_id": nullable(STR),
            "metadata": METADATA,
        },
        object_name="thread.message",
    ),
    "Run": obj(
        {
            "id": STR,
            "created_at": TS,
            "thread_id": STR,
            "assistant_id": STR,
            "status": {"type": "string", "enum": list(RunStatus.values)},
            "required_action": nullable(OBJ),
            "last_error": nullable(obj({"code": STR, "message": STR})),
            "expires_at": nullable(TS),
            "started_at": nullable(TS),
            "cancelled_at": nullable(TS),
            "failed_at": nullable(TS),
            "completed_at": nullable(TS),
            "incomplete_details": nullable(OBJ),
            "model": STR,
            "instructions": STR,
            "tools": {"type": "array", "items": TOOL},
            "metadata": METADATA,
            "usage": USAGE,
            "temperature": nullable(NUM),
            "top_p": nullable(NUM),
            "max_prompt_tokens": nullable(INT),
            "max_completion_tokens": nullable(INT),
            "truncation_strategy": OBJ,
            "response_format": RESPONSE_FORMAT,
            "tool_choice": {"anyOf": [STR, OBJ]},
            "parallel_tool_calls": BOOL,
        },
        object_name="thread.run",
    ),
    "RunStep": obj(
        {
            "id": STR,
            "created_at": TS,
            "run_id": STR,
            "assistant_id": STR,
            "thread_id": STR,
            "type": {"type": "string", "enum": ["message_creation", "tool_calls"]},
            "status": {
                "type": "string",
                "enum": ["in_progress", "cancelled", "failed", "completed", "expired"],
            },
            "step_details": OBJ,
            "last_error": nullable(OBJ),
            "expired_at": nullable(TS),
            "cancelled_at": nullable(TS),
            "failed_at": nullable(TS),
            "completed_at": nullable(TS),
            "metadata": nullable(METADATA),
            "usage": USAGE,
        },
        object_name="thread.run.step",
    ),
    "OpenAIFile": obj(
        {
            "id": STR,
            "bytes": INT,
            "created_at": TS,
            "expires_at": nullable(TS),
            "filename": STR,
            "purpose": STR,
            "status": STR,
            "status_details": nullable(STR),
        },
        object_name="file",
    ),
    "AssistantDeleted": deleted("assistant.deleted"),
    "ThreadDeleted": deleted("thread.deleted"),
    "MessageDeleted": deleted("thread.message.deleted"),
    "FileDeleted": deleted("file"),
    "AssistantList": listing("Assistant"),
    "MessageList": listing("Message"),
    "RunList": listing("Run"),
    "RunStepList": listing("RunStep"),
    "FileList": listing("OpenAIFile"),
}


# --- vector stores ---------------------------------------------------------------------------------
FILE_COUNTS = obj(
    {"in_progress": INT, "completed": INT, "failed": INT, "cancelled": INT, "total": INT}, closed=True
)
STATIC_CHUNKING = obj(
    {
        "type": {"type": "string", "enum": ["static"]},
        "static": obj({"max_chunk_size_tokens": INT, "chunk_overlap_tokens": INT}, closed=True),
    },
    closed=True,
)
TEXT_PART = obj({"type": {"type": "string", "enum": ["text"]}, "text": STR}, closed=True)
ATTRIBUTES = {"type": "object", "additionalProperties": {"anyOf": [STR, NUM, BOOL]}}


def _unpaged(object_name: str, item: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return obj(
        {
            "object": {"type": "string", "enum": [object_name]},
            **(extra or {}),
            "data": {"type": "array", "items": item},
            "has_more": BOOL,
            "next_page": nullable(STR),
        },
        closed=True,
    )


VECTOR_STORE_COMPONENTS: dict[str, dict[str, Any]] = {
    "VectorStore": obj(
        {
            "id": STR,
            "created_at": TS,
            "name": STR,
            "usage_bytes": INT,
            "file_counts": FILE_COUNTS,
            "status": {"type": "string", "enum": ["expired", "in_progress", "completed"]},
            "expires_after": nullable(
                obj({"anchor": {"type": "string", "enum": ["last_active_at"]}, "days": INT}, closed=True)
            ),
            "expires_at": nullable(TS),
            "last_active_at": nullable(TS),
            "metadata": METADATA,
        },
        object_name="vector_store",
    ),
    "VectorStoreFile": obj(
        {
            "id": STR,
            "created_at": TS,
            "vector_store_id": STR,
            "status": {"type": "string", "enum": list(VECTOR_STORE_FILE_STATUSES)},
            "last_error": nullable(
                obj(
                    {
                        "code": {
                            "type": "string",
                            "enum": ["server_error", "unsupported_file", "invalid_file"],
                        },
                        "message": STR,
                    },
                    closed=True,
                )
            ),
            "usage_bytes": INT,
            "attributes": ATTRIBUTES,
            "chunking_strategy": STATIC_CHUNKING,
        },
        object_name="vector_store.file",
    ),
    "VectorStoreFileBatch": obj(
        {
            "id": STR,
            "created_at": TS,
            "vector_store_id": STR,
            "status": {"type": "string", "enum": ["in_progress", "completed", "cancelled", "failed"]},
            "file_counts": FILE_COUNTS,
        },
        object_name="vector_store.files_batch",
    ),
    "VectorStoreFileContent": _unpaged("vector_store.file_content.page", TEXT_PART),
    "VectorStoreSearchResults": _unpaged(
        "vector_store.search_results.page",
        obj(
            {
                "file_id": STR,
                "filename": STR,
                "score": NUM,
                "attributes": ATTRIBUTES,
                "content": {"type": "array", "items": TEXT_PART},
            },
            closed=True,
        ),
        {"search_query": {"type": "array", "items": STR}},
    ),
    "VectorStoreDeleted": deleted("vector_store.deleted"),
    "VectorStoreFileDeleted": deleted("vector_store.file.deleted"),
    "VectorStoreList": listing("VectorStore"),
    "VectorStoreFileList": listing("VectorStoreFile"),
}
COMPONENTS.update(VECTOR_STORE_COMPONENTS)

MODEL = obj({"id": STR, "created": INT, "owned_by": STR}, object_name="model")
COMPONENTS.update(
    {
        "Model": MODEL,
        # Unpaged, as OpenAI's: the SDKs read `data` only.
        "ModelList": obj(
            {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": ref("Model")}}
        ),
    }
)
