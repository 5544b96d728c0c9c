"""Request bodies and query strings of every /v1 endpoint, declared with validation/'s field types:
validated by routing.py and published by openapi.py from these same objects."""

from __future__ import annotations

from assistants_app.api.validation import (
    AnyObject,
    Arr,
    Bool,
    Const,
    Either,
    Field,
    Int,
    Metadata,
    Num,
    Obj,
    Query,
    Str,
    Tagged,
    list_query,
)
from assistants_app.services.tools import FUNCTION_NAME_PATTERN, MAX_DESCRIPTION

INCLUDE_FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")

ID = Str(max_len=64, min_len=1, required=True)

# --- tools and their settings --------------------------------------------------------------------
FUNCTION_TOOL = Obj(
    {
        "type": Const("function"),
        "function": Obj(
            {
                "name": Str(required=True, pattern=FUNCTION_NAME_PATTERN),
                "description": Str(max_len=MAX_DESCRIPTION),
                "parameters": AnyObject(),
                "strict": Bool(),
            },
            required=True,
        ),
    }
)
FILE_SEARCH_TOOL = Obj(
    {
        "type": Const("file_search"),
        "file_search": Obj(
            {
                "max_num_results": Int(minimum=1, maximum=50),
                "ranking_options": Obj(
                    {
                        "ranker": Str(enum=("auto", "default_2024_08_21")),
                        "score_threshold": Num(minimum=0, maximum=1, required=True),
                    }
                ),
            }
        ),
    }
)
CODE_INTERPRETER_TOOL = Obj({"type": Const("code_interpreter")})
TOOL = Tagged(
    {"function": FUNCTION_TOOL, "file_search": FILE_SEARCH_TOOL, "code_interpreter": CODE_INTERPRETER_TOOL}
)
TOOLS = Arr(TOOL, max_items=128)

RESPONSE_FORMAT = Either(
    Str(enum=("auto",)),
    Tagged(
        {
            "text": Obj({"type": Const("text")}),
            "json_object": Obj({"type": Const("json_object")}),
            "json_schema": Obj(
                {
                    "type": Const("json_schema"),
                    "json_schema": Obj(
                        {
                            "name": Str(required=True, pattern=FUNCTION_NAME_PATTERN),
                            "description": Str(),
                            "schema": AnyObject(),
                            "strict": Bool(),
                        },
                        required=True,
                    ),
                }
            ),
        }
    ),
)

TOOL_CHOICE = Either(
    Str(enum=("none", "auto", "required")),
    Tagged(
        {
            "function": Obj(
                {"type": Const("function"), "function": Obj({"name": Str(required=True)}, required=True)}
            ),
            "code_interpreter": Obj({"type": Const("code_interpreter")}),
            "file_search": Obj({"type": Const("file_search")}),
        }
    ),
)

TRUNCATION_STRATEGY = Obj(
    {"type": Str(enum=("auto", "last_messages"), required=True), "last_messages": Int(minimum=1)}
)

FILE_IDS = Arr(Str(max_len=64), max_items=20)
CHUNKING_STRATEGY = Tagged(
    {
        "auto": Obj({"type": Const("auto")}),
        "static": Obj(
            {
                "type": Const("static"),
                "static": Obj(
                    {
                        "max_chunk_size_tokens": Int(minimum=100, maximum=4096, required=True),
                        "chunk_overlap_tokens": Int(minimum=0, required=True),
                    },
                    required=True,
                ),
            }
        ),
    }
)


def tool_resources(*, inline_vector_stores: bool) -> Obj:
    file_search: dict[str, Field] = {"vector_store_ids": Arr(Str(max_len=64), max_items=1)}
    if inline_vector_stores:
        file_search["vector_stores"] = Arr(
            Obj(
                {
                    "file_ids": Arr(Str(max_len=64), max_items=10000),
                    "chunking_strategy": CHUNKING_STRATEGY,
                    "metadata": Metadata(),
                }
            ),
            max_items=1,
        )
    return Obj({"code_interpreter": Obj({"file_ids": FILE_IDS}), "file_search": Obj(file_search)})


# --- messages --------------------------------------------------------------------------------------
IMAGE_DETAIL = Str(enum=("auto", "low", "high"))
CONTENT_PART = Tagged(
    {
        "text": Obj({"type": Const("text"), "text": Str(required=True)}),
        "image_file": Obj(
            {
                "type": Const("image_file"),
                "image_file": Obj({"file_id": ID, "detail": IMAGE_DETAIL}, required=True),
            }
        ),
        "image_url": Obj(
            {
                "type": Const("image_url"),
                "image_url": Obj(
                    {"url": Str(required=True, max_len=8192), "detail": IMAGE_DETAIL}, required=True
                ),
            }
        ),
    }
)
ATTACHMENT = Obj(
    {
        "file_id": ID,
        "tools": Arr(
            Tagged(
                {
                    "code_interpreter": Obj({"type": Const("code_interpreter")}),
                    "file_search": Obj({"type": Const("file_search")}),
                }
            )
        ),
    }
)


def message_fields() -> dict[str, Field]:
    return {
        "role": Str(enum=("user", "assistant"), required=True),
        "content": Either(Str(max_len=256_000), Arr(CONTENT_PART, min_items=1), required=True),
        "attachments": Arr(ATTACHMENT, max_items=10),
        "metadata": Metadata(),
    }


MESSAGE_CREATE = Obj(message_fields())
MESSAGE_UPDATE = Obj({"metadata": Metadata()})
MESSAGE_LIST_QUERY = list_query(run_id=Str(max_len=64, description="Only messages created by this run"))


# --- assistants -----------------------------------------------------------------------------------
def assistant_fields(*, create: bool) -> dict[str, Field]:
    return {
        "model": Str(required=create, min_len=1, max_len=256, nullable=not create),
        "name": Str(max_len=256),
        "description": Str(max_len=512),
        "instructions": Str(max_len=256_000),
        "metadata": Metadata(),
        "reasoning_effort": Str(enum=REASONING_EFFORTS),
        "response_format": RESPONSE_FORMAT,
        "temperature": Num(minimum=0, maximum=2),
        "top_p": Num(minimum=0, maximum=1),
        "tools": TOOLS,
        "tool_resources": tool_resources(inline_vector_stores=create),
    }


ASSISTANT_CREATE = Obj(assistant_fields(create=True))
ASSISTANT_UPDATE = Obj(assistant_fields(create=False))

# --- threads --------------------------------------------------------------------------------------
THREAD_CREATE = Obj(
    {
        "messages": Arr(Obj(message_fields()), max_items=32),
        "metadata": Metadata(),
        "tool_resources": tool_resources(inline_vector_stores=True),
    }
)
THREAD_UPDATE = Obj({"metadata": Metadata(), "tool_resources": tool_resources(inline_vector_stores=False)})


# --- runs -----------------------------------------------------------------------------------------
def run_option_fields() -> dict[str, Field]:
    return {
        "assistant_id": ID,
        "model": Str(min_len=1, max_len=256),
        "instructions": Str(max_len=256_000),
        "tools": TOOLS,
        "metadata": Metadata(),
        "temperature": Num(minimum=0, maximum=2),
        "top_p": Num(minimum=0, maximum=1),
        "stream": Bool(),
        "max_prompt_tokens": Int(minimum=1),
        "max_completion_tokens": Int(minimum=1),
        "truncation_strategy": TRUNCATION_STRATEGY,
        "tool_choice": TOOL_CHOICE,
        "parallel_tool_calls": Bool(),
        "response_format": RESPONSE_FORMAT,
    }


RUN_CREATE = Obj(
    {
        **run_option_fields(),
        "additional_instructions": Str(max_len=256_000),
        "additional_messages": Arr(Obj(message_fields()), max_items=32),
        "reasoning_effort": Str(enum=REASONING_EFFORTS),
    }
)
RUN_CREATE_QUERY = Query({"include": Arr(Str(enum=(INCLUDE_FILE_SEARCH_CONTENT,)))}, arrays=("include",))
CREATE_AND_RUN = Obj(
    {
        **run_option_fields(),
        "thread": Obj(
            {
                "messages": Arr(Obj(message_fields()), max_items=32),
                "metadata": Metadata(),
                "tool_resources": tool_resources(inline_vector_stores=True),
            }
        ),
        "tool_resources": tool_resources(inline_vector_stores=False),
    }
)
RUN_UPDATE = Obj({"metadata": Metadata()})
SUBMIT_TOOL_OUTPUTS = Obj(
    {
        "tool_outputs": Arr(
            Obj(
                {
                    "tool_call_id": Str(max_len=64, required=True),
                    "output": Str(max_len=1_000_000, required=True),
                }
            ),
            min_items=1,
            max_items=128,
            required=True,
        ),
        "stream": Bool(),
    }
)
RUN_LIST_QUERY = list_query()
STEP_INCLUDE = Query({"include": Arr(Str(enum=(INCLUDE_FILE_SEARCH_CONTENT,)))}, arrays=("include",))
STEP_LIST_QUERY = Query({**list_query().fields, **STEP_INCLUDE.fields}, arrays=("include",))

ASSISTANT_LIST_QUERY = list_query()

# --- files ----------------------------------------------------------------------------------------
FILE_LIST_QUERY = list_query(
    max_limit=10_000,
    default_limit=10_000,
    before=False,
    purpose=Str(max_len=32, description="Only files with this purpose"),
)
NO_QUERY = Query({})
