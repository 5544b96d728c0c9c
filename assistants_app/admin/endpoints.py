"""The assistant editor's function endpoints: an inline under the assistant, one row per function the
engine should answer by calling an HTTP endpoint. The rules are services/function_endpoints.py's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from assistants_app.models import FunctionEndpoint
from assistants_app.services import function_endpoints

HEADERS_HELP = (
    "One header per line, “Header-Name: ENV_VAR_NAME”: the header's value is read from that "
    "environment variable of the server when the call is made (the whole value, e.g. “Bearer abc”). "
    "Values are never stored here."
)


def parse_header_lines(raw: str) -> tuple[dict[str, str], list[str]]:
    """“Name: VARIABLE” lines → {"Name": "VARIABLE"}, and the lines that are not of that form."""
    header_env: dict[str, str] = {}
    errors: list[str] = []
    for number, line in enumerate((raw or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        name, sep, variable = line.partition(":")
        if not sep or not name.strip() or not variable.strip():
            errors.append(f"Line {number}: write “Header-Name: ENV_VAR_NAME”.")
            continue
        if name.strip().lower() in (n.lower() for n in header_env):
            errors.append(f"Line {number}: the {name.strip()} header is given twice.")
            continue
        header_env[name.strip()] = variable.strip()
    return header_env, errors


class FunctionEndpointForm(forms.ModelForm[FunctionEndpoint]):
    headers = forms.CharField(
        label="Headers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField", "spellcheck": "false"}),
        help_text=HEADERS_HELP,
    )

    class Meta:
        model = FunctionEndpoint
        fields = ["function_name", "url", "method", "timeout_seconds", "max_response_bytes"]
        labels = {
            "function_name": "Function",
            "url": "URL",
            "timeout_seconds": "Timeout (seconds)",
            "max_response_bytes": "Response size cap (bytes)",
        }
        help_texts = {
            "function_name": "The name of one of the function tools above.",
            "url": "http(s)://…; only public addresses unless FUNCTION_ENDPOINTS_ALLOWED_PRIVATE allows it. "
            "Redirects are followed on the same host only.",
            "timeout_seconds": f"For the whole call, redirects included (at most "
            f"{function_endpoints.MAX_TIMEOUT_SECONDS:g}).",
            "max_response_bytes": "The answer is cut here (with a marker) before the model reads it "
            f"(at most {function_endpoints.MAX_RESPONSE_BYTES}).",
        }
        widgets = {"url": forms.TextInput(attrs={"class": "vLargeTextField"})}

    def __init__(self, *args: Any, functions: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.functions = functions or []
        if not self.is_bound and self.instance.header_env:
            # Sorted: PostgreSQL's jsonb does not keep the order they were given in.
            rows = sorted(self.instance.header_env.items(), key=lambda kv: kv[0].lower())
            self.initial["headers"] = "\n".join(f"{k}: {v}" for k, v in rows)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        header_env, errors = parse_header_lines(data.get("headers", ""))
        if errors:
            self.add_error("headers", errors)
        problems = function_endpoints.endpoint_problems(
            functions=self.functions,
            function_name=(data.get("function_name") or "").strip(),
            url=(data.get("url") or "").strip(),
            method=data.get("method") or "",
            header_env=header_env,
            timeout_seconds=data.get("timeout_seconds"),
            max_response_bytes=data.get("max_response_bytes"),
        )
        for field, messages in problems.items():
            target = "headers" if field == "header_env" else field
            if target in self.fields and target not in self.errors:
                self.add_error(target, messages)
            elif target not in self.fields:
                raise ValidationError(messages)
        data["header_env"] = header_env
        return data

    def save(self, commit: bool = True) -> FunctionEndpoint:
        endpoint: FunctionEndpoint = super().save(commit=False)
        endpoint.function_name = endpoint.function_name.strip()
        endpoint.url = endpoint.url.strip()
        endpoint.header_env = self.cleaned_data.get("header_env") or {}
        if commit:
            endpoint.save()
        return endpoint


class FunctionEndpointFormSet(forms.BaseInlineFormSet):  # type: ignore[type-arg]
    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        # The admin builds this formset with the assistant as the submitted form left it (tools
        # included), so a function added in the same save can get its endpoint at once.
        kwargs: dict[str, Any] = super().get_form_kwargs(index)
        kwargs["functions"] = function_endpoints.function_names(self.instance.tools)
        return kwargs


class FunctionEndpointInline(admin.StackedInline[FunctionEndpoint, Any]):
    model = FunctionEndpoint
    form = FunctionEndpointForm
    formset = FunctionEndpointFormSet
    extra = 0
    verbose_name = "Function endpoint"
    verbose_name_plural = "Function endpoints (the server calls them instead of waiting for a client)"
    fields = ("function_name", "url", "method", "headers", "timeout_seconds", "max_response_bytes")
