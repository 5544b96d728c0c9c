"""Forms for the staff admin: the assistant editor (tools, response format, retrieval uploads) and
API key creation. Parsing lives here so that the admin classes only wire things together; the rules
for tools are services/tools.py's, the API's own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from assistants_app.models import ApiKey, Assistant
from assistants_app.services import tools

ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESPONSE_FORMATS = (
    ("auto", "auto (plain text)"),
    ("json_object", "json_object (any JSON object)"),
    ("json_schema", "json_schema (JSON matching a schema)"),
)
JSON_SCHEMA_KEYS = frozenset({"name", "description", "schema", "strict"})


def parse_functions(raw: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse the function-tools textarea: a JSON list of function definitions.

    Items may also be given in the API's wrapped form {"type": "function", "function": {...}}, since
    that is what people copy from request bodies. Returns (functions, errors). The definitions are
    checked by the API's own validator (services/tools.py); every error names the function it is
    about, so that one save reports all of them.
    """
    raw = (raw or "").strip()
    if not raw:
        return [], []
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return [], [f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."]
    if not isinstance(data, list):
        return [], ['Expected a JSON list of function definitions, e.g. [{"name": "get_weather", ...}].']
    functions: list[dict[str, Any]] = []
    numbers: list[int] = []  # each function's position in the textarea's list, from 1
    errors: list[str] = []
    for i, item in enumerate(data, 1):
        if (
            isinstance(item, dict)
            and item.get("type") == "function"
            and isinstance(item.get("function"), dict)
        ):
            item = item["function"]
        if not isinstance(item, dict):
            errors.append(f"Function #{i} must be a JSON object.")
            continue
        functions.append(item)
        numbers.append(i)
    for problem in tools.tool_problems([{"type": "function", "function": f} for f in functions]):
        name = functions[problem.index].get("name")
        number = numbers[problem.index]
        label = f"Function #{number} ({name})" if isinstance(name, str) and name else f"Function #{number}"
        hint = " Use the checkbox above." if problem.code == "reserved_function_name" else ""
        errors.append(f"{label}: {problem.message}{hint}")
    return functions, errors


def parse_json_schema_format(raw: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The json_schema response format: {"name", "schema", "strict"?, "description"?}.

    A bare JSON Schema is accepted too and named "response": staff usually have the schema at hand.
    """
    raw = (raw or "").strip()
    if not raw:
        return None, ["Enter the JSON Schema the answers must match."]
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, [f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."]
    if not isinstance(data, dict):
        return None, ["Expected a JSON object."]
    if "schema" not in data:
        data = {"name": "response", "schema": data}
    errors: list[str] = []
    unknown = sorted(set(data) - JSON_SCHEMA_KEYS)
    if unknown:
        errors.append(f"Unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(JSON_SCHEMA_KEYS))}.")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(tools.FUNCTION_NAME_PATTERN, name):
        errors.append("name must be 1-64 characters of letters, digits, '_' or '-'.")
    if "strict" in data and not isinstance(data["strict"], bool):
        errors.append("strict must be true or false.")
    errors.extend(tools.check_json_schema(data["schema"], "schema"))
    return data, errors


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file input that accepts many files at once; cleans to a (possibly empty) list."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile[bytes]]:
        items = data if isinstance(data, list | tuple) else ([data] if data else [])
        single = super().clean
        return [single(item, initial) for item in items if item]


class AssistantForm(forms.ModelForm[Assistant]):
    # Set by the admin per request: the backend's model ids, or None for a free-text input.
    model_choices: list[str] | None = None

    temperature = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=2.0,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="0 to 2; empty means the backend's default.",
    )
    top_p = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        widget=forms.NumberInput(attrs={"step": "0.05"}),
        help_text="0 to 1; empty means the backend's default.",
    )
    response_format_type = forms.ChoiceField(
        label="Response format", choices=RESPONSE_FORMATS, initial="auto"
    )
    response_format_schema = forms.CharField(
        label="Response JSON Schema",
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "class": "vLargeTextField", "spellcheck": "false"}),
        help_text='For json_schema only: {"name": "...", "schema": {...}, "strict": true}, or just the schema.',
    )
    # Not required: a form posted without it (a script, an older page) keeps "auto".
    accepts_images = forms.ChoiceField(
        label="Model takes images",
        choices=Assistant.AcceptsImages.choices,
        required=False,
        help_text="Whether chat messages may carry images to this assistant. With No, a run "
        "whose thread has images fails with a clear error instead of calling the model; with Auto or "
        "Yes they are sent, and a model that refuses them fails the run with the upstream's words.",
    )
    enable_file_search = forms.BooleanField(label="File search", required=False)
    enable_code_interpreter = forms.BooleanField(label="Code interpreter", required=False)
    functions = forms.CharField(
        label="Function tools",
        required=False,
        widget=forms.Textarea(attrs={"rows": 14, "class": "vLargeTextField", "spellcheck": "false"}),
        help_text='A JSON list of function definitions: [{"name": "get_weather", "description": "...", '
        '"parameters": {"type": "object", "properties": {...}}, "strict": false}].',
    )
    retrieval_files = MultipleFileField(
        label="Add retrieval files",
        required=False,
        help_text="Select one or more files; they are added to this assistant's vector store and indexed "
        "in the background (status below).",
    )

    class Meta:
        model = Assistant
        fields = [
            "name",
            "description",
            "model",
            "instructions",
            "temperature",
            "top_p",
            "is_default",
            "backend_base_url",
            "backend_api_key_env",
            "accepts_images",
        ]
        labels = {
            "is_default": "Default for the chat page",
            "backend_base_url": "Backend base URL",
        }
        help_texts = {
            "is_default": "The chat page talks to this assistant; saving it as default un-defaults the others.",
            "backend_base_url": "An OpenAI-compatible /v1 URL; empty means the server's OPENAI_BASE_URL.",
            "backend_api_key_env": "The NAME of an environment variable holding the key (never the key); "
            "empty means OPENAI_API_KEY.",
        }
        widgets = {"instructions": forms.Textarea(attrs={"rows": 18, "class": "vLargeTextField"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "model" in self.fields:
            self._set_model_widget()
        if not self.is_bound:
            self._set_initial_from_instance()

    def _set_model_widget(self) -> None:
        choices = list(self.model_choices or [])
        if not choices:
            self.fields["model"].help_text = "The backend did not list its models: type the model id."
            return
        current = self.initial.get("model") or ""
        if current and current not in choices:
            # Keep an assistant's model selectable even when the backend no longer lists it.
            choices.insert(0, current)
        # Still a CharField: a model the backend stopped listing between render and save is accepted.
        self.fields["model"].widget = forms.Select(choices=[("", "---------"), *[(c, c) for c in choices]])
        self.fields["model"].help_text = "Models listed by the assistant's backend."

    def _set_initial_from_instance(self) -> None:
        tools = self.instance.tools or []
        self.initial["enable_file_search"] = any(t.get("type") == "file_search" for t in tools)
        self.initial["enable_code_interpreter"] = any(t.get("type") == "code_interpreter" for t in tools)
        functions = [t.get("function") for t in tools if t.get("type") == "function"]
        self.initial["functions"] = json.dumps(functions, indent=2, ensure_ascii=False) if functions else ""
        rf = self.instance.response_format
        kind = rf.get("type") if isinstance(rf, dict) else "auto"
        self.initial["response_format_type"] = kind if kind in ("json_object", "json_schema") else "auto"
        if kind == "json_schema" and isinstance(rf, dict):
            self.initial["response_format_schema"] = json.dumps(
                rf.get("json_schema"), indent=2, ensure_ascii=False
            )

    # --- field validation --------------------------------------------------------------------------
    def clean_functions(self) -> list[dict[str, Any]]:
        functions, errors = parse_functions(self.cleaned_data.get("functions", ""))
        if errors:
            raise ValidationError(errors)
        return functions

    def clean_accepts_images(self) -> str:
        return self.cleaned_data.get("accepts_images") or Assistant.AcceptsImages.AUTO

    def clean_backend_api_key_env(self) -> str:
        name = (self.cleaned_data.get("backend_api_key_env") or "").strip()
        if name and not ENV_VAR_RE.match(name):
            raise ValidationError("Enter an environment variable name (letters, digits, '_'), not a key.")
        return name

    def clean_backend_base_url(self) -> str:
        url = (self.cleaned_data.get("backend_base_url") or "").strip()
        if url:
            forms.URLField(assume_scheme="https").clean(url)
            if not url.startswith(("http://", "https://")):
                raise ValidationError("Use an http:// or https:// URL.")
        return url

    def clean_retrieval_files(self) -> list[UploadedFile[bytes]]:
        files = self.cleaned_data.get("retrieval_files") or []
        limit = settings.FILE_UPLOAD_MAX_BYTES
        too_big = [f.name for f in files if f.size > limit]
        if too_big:
            raise ValidationError(f"Over the {limit}-byte limit: {', '.join(too_big)}.")
        return files

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("response_format_type") == "json_schema":
            fmt, errors = parse_json_schema_format(data.get("response_format_schema", ""))
            if errors:
                self.add_error("response_format_schema", errors)
            else:
                data["response_format_json_schema"] = fmt
        return data

    def validate_constraints(self) -> None:
        # Saving as default un-defaults the others (the admin's save_model), so the one-default
        # constraint is satisfied by the save itself, not a reason to reject the form.
        exclude = self._get_validation_exclusions() | {"is_default"}  # type: ignore[attr-defined]
        try:
            self.instance.validate_constraints(exclude=exclude)
        except ValidationError as exc:
            self._update_errors(exc)  # type: ignore[attr-defined]

    # --- saving ------------------------------------------------------------------------------------
    def build_tools(self) -> list[dict[str, Any]]:
        old = {t.get("type"): t for t in (self.instance.tools or []) if t.get("type") != "function"}
        tools: list[dict[str, Any]] = []
        if self.cleaned_data.get("enable_file_search"):
            # Keep an existing file_search configuration (max_num_results, ranking options...).
            tools.append(old.get("file_search") or {"type": "file_search"})
        if self.cleaned_data.get("enable_code_interpreter"):
            tools.append({"type": "code_interpreter"})
        tools.extend({"type": "function", "function": f} for f in self.cleaned_data.get("functions") or [])
        return tools

    def build_response_format(self) -> dict[str, Any] | None:
        kind = self.cleaned_data.get("response_format_type")
        if kind == "json_object":
            return {"type": "json_object"}
        if kind == "json_schema":
            return {"type": "json_schema", "json_schema": self.cleaned_data["response_format_json_schema"]}
        return None  # "auto": the API stores auto as null

    def save(self, commit: bool = True) -> Assistant:
        assistant: Assistant = super().save(commit=False)
        assistant.tools = self.build_tools()
        assistant.response_format = self.build_response_format()
        if commit:
            assistant.save()
        return assistant


class ApiKeyCreateForm(forms.ModelForm[ApiKey]):
    """Adding a key: pick the user and a label; the key itself is generated and shown once."""

    class Meta:
        model = ApiKey
        fields = ["user", "name"]
        help_texts = {"name": "A label to tell keys apart."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["user"].queryset = users  # type: ignore[attr-defined]
