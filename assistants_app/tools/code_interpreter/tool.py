"""The code interpreter as a hosted tool: the model writes Python, the engine runs it in the sandbox.

Each thread has a working directory (mounted at /mnt/data in the sandbox) seeded with the files of
the assistant's and thread's `tool_resources.code_interpreter` and of message attachments for the
code interpreter. Files the code writes become File objects the thread's owner can download.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile

from assistants_app.models import File, Message, Run, Thread
from assistants_app.tools import hosted

from . import sandbox

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
MAX_LOGS_FOR_MODEL = 8000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

DESCRIPTION = (
    "Run Python 3 code in a sandbox with numpy, pandas and matplotlib, and get back what it prints "
    "(and the value of the last expression). The working directory is /mnt/data; uploaded files are "
    "there, and files you save there (e.g. plt.savefig('/mnt/data/plot.png')) are given to the user; "
    "refer to them as sandbox:/mnt/data/<name>. There is no network. Variables do not persist between "
    "calls, but files in /mnt/data do."
)


def workdir_for(thread_id: str) -> Path:
    root = (
        getattr(settings, "CODE_INTERPRETER_WORKDIR_ROOT", "") or Path(settings.DATA_DIR) / "code-interpreter"
    )
    return Path(root) / thread_id


def safe_name(name: str) -> str:
    cleaned = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "file"
    return cleaned[:100]


class CodeInterpreter:
    type = "code_interpreter"

    def function_spec(self, run: Run, tool: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": "code_interpreter",
            "description": DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The Python code to run."}},
                "required": ["code"],
            },
        }

    def initial_call(self, call_id: str) -> dict[str, Any]:
        return {"id": call_id, "type": "code_interpreter", "code_interpreter": {"input": "", "outputs": []}}

    def input_delta(self, arguments_so_far: str, fragment: str) -> dict[str, Any] | None:
        before = partial_code(arguments_so_far[: len(arguments_so_far) - len(fragment)])
        after = partial_code(arguments_so_far)
        if len(after) <= len(before):
            return None
        return {"type": "code_interpreter", "code_interpreter": {"input": after[len(before) :]}}

    async def execute(self, ctx: hosted.ToolContext, arguments: str) -> hosted.ToolOutcome:
        code = parse_code(arguments)
        workdir = workdir_for(ctx.run.thread_id)
        await sync_to_async(seed_workdir, thread_sensitive=False)(ctx.run, workdir)
        try:
            result = await sandbox.execute(code, workdir)
        except sandbox.SandboxUnavailable as exc:
            logs = f"The code interpreter is not available on this server: {exc}"
            failed: list[dict[str, Any]] = [{"type": "logs", "logs": logs}]
            ctx.emit_delta(
                {"type": "code_interpreter", "code_interpreter": {"outputs": [{"index": 0, **failed[0]}]}}
            )
            return hosted.ToolOutcome(
                output=logs,
                tool_call={
                    "type": "code_interpreter",
                    "code_interpreter": {"input": code, "outputs": failed},
                },
            )
        logs = result.logs
        if result.killed_reason:
            logs = f"{logs.rstrip()}\n{result.killed_reason}".lstrip()
        elif result.exit_code not in (0, None) and not logs.strip():
            logs = f"Process exited with status {result.exit_code}."
        files = await sync_to_async(store_outputs, thread_sensitive=False)(ctx.run, workdir, result.files)
        outputs: list[dict[str, Any]] = []
        if logs:
            outputs.append({"type": "logs", "logs": logs})
        outputs += [{"type": "image", "image": {"file_id": f["file_id"]}} for f in files if f["image"]]
        if outputs:
            ctx.emit_delta(
                {
                    "type": "code_interpreter",
                    "code_interpreter": {"outputs": [{"index": i, **o} for i, o in enumerate(outputs)]},
                }
            )
        for_model = logs[-MAX_LOGS_FOR_MODEL:] if logs else "(no output)"
        if files:
            for_model += "\nFiles written: " + ", ".join(f"sandbox:/mnt/data/{f['name']}" for f in files)
        return hosted.ToolOutcome(
            output=for_model,
            tool_call={"type": "code_interpreter", "code_interpreter": {"input": code, "outputs": outputs}},
            files=files,
        )


def parse_code(arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        # Some models send the code itself instead of {"code": ...}.
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return parsed["code"]
    return arguments


_CODE_KEY = re.compile(r'"code"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def partial_code(arguments: str) -> str:
    """The decoded prefix of the `code` string in a JSON object that is still being streamed."""
    m = _CODE_KEY.search(arguments)
    if not m:
        return ""
    out: list[str] = []
    i = m.end()
    while i < len(arguments):
        ch = arguments[i]
        if ch == '"':
            break
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(arguments):
            break  # an escape cut in half: wait for the rest
        esc = arguments[i + 1]
        if esc == "u":
            if i + 6 > len(arguments):
                break
            try:
                out.append(chr(int(arguments[i + 2 : i + 6], 16)))
            except ValueError:
                break
            i += 6
            continue
        out.append(_ESCAPES.get(esc, esc))
        i += 2
    return "".join(out)


def seed_workdir(run: Run, workdir: Path) -> None:
    """Copy in the files this run may use; never overwrite what the code already changed."""
    workdir.mkdir(parents=True, exist_ok=True)
    thread = Thread.objects.get(id=run.thread_id)
    ids: list[str] = list((run.tool_resources or {}).get("code_interpreter", {}).get("file_ids", []))
    ids += (thread.tool_resources or {}).get("code_interpreter", {}).get("file_ids", [])
    for attachments in (
        Message.objects.filter(thread_id=run.thread_id)
        .exclude(attachments=[])
        .values_list("attachments", flat=True)
    ):
        for att in attachments or []:
            if any(t.get("type") == "code_interpreter" for t in att.get("tools", [])):
                ids.append(att.get("file_id"))
    # Files are the thread owner's, or the assistant owner's (staff assistants have no owner).
    owners = [thread.owner_id]
    if run.assistant_id:
        owner = run.assistant.owner_id if run.assistant else None
        if owner:
            owners.append(owner)
    for f in File.objects.filter(id__in=set(ids), owner_id__in=owners):
        target = workdir / safe_name(f.filename)
        if target.exists():
            continue
        with f.data.open("rb") as src:
            target.write_bytes(src.read())


def store_outputs(run: Run, workdir: Path, paths: list[Path]) -> list[dict[str, Any]]:
    owner_id = Thread.objects.filter(id=run.thread_id).values_list("owner_id", flat=True).get()
    out = []
    for rel in paths:
        full = workdir / rel
        if not full.is_file() or full.is_symlink():
            continue
        data = full.read_bytes()
        if len(data) > settings.FILE_UPLOAD_MAX_BYTES:
            continue
        name = rel.name
        f = File(
            owner_id=owner_id,
            filename=name,
            purpose="assistants_output",
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        )
        f.data.save(f.id, ContentFile(data), save=False)
        f.save()
        out.append({"file_id": f.id, "name": str(rel), "image": full.suffix.lower() in IMAGE_SUFFIXES})
    return out


hosted.register(CodeInterpreter())
