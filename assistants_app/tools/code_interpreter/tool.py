"""The code interpreter as a hosted tool: the model writes Python, the engine runs it in the sandbox.

Each thread has a working directory (mounted at /mnt/data in the sandbox) seeded with the files of
the assistant's and thread's `tool_resources.code_interpreter` and of message attachments for the
code interpreter. Files the code writes become File objects the thread's owner can download.

Each thread also has a Python session (sessions.py) where the server supports them: executions of
the thread run in one interpreter that keeps its variables, like notebook cells. When a session
ends and a later execution starts a new one, that execution's output says the state was lost, and
why, so the model knows to recompute what it relied on.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile

from assistants_app.asyncdb import db
from assistants_app.models import File, Message, Run, RunStep, Thread
from assistants_app.services.files import OUTPUT_PURPOSE, StorageQuotaExceeded, store_file
from assistants_app.tools import hosted

from . import config, sandbox, sessions
from . import workdir as wd

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
MAX_LOGS_FOR_MODEL = 8000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

DESCRIPTION = (
    "Run Python 3 code in a sandbox with numpy, pandas and matplotlib, and get back what it prints "
    "(and the value of the last expression). The working directory is /mnt/data; uploaded files are "
    "there, and files you save there (e.g. plt.savefig('/mnt/data/plot.png')) are given to the user; "
    "refer to them as sandbox:/mnt/data/<name>. There is no network. "
)
WITHOUT_SESSIONS = "Variables do not persist between calls, but files in /mnt/data do."
WITH_SESSIONS = (
    "Calls in this conversation share one Python session, like notebook cells: variables, functions "
    "and imports persist from one call to the next, as do files in /mnt/data. The session restarts "
    "after {idle} without a call or when a call exceeds a limit; you are told when that happens."
)
# Notes added to the logs the model reads.
STATE_LOST = (
    "[The Python state was lost ({reason}). This code ran in a new session: variables, functions "
    "and imports from earlier executions are gone; files in /mnt/data are kept.]"
)
SESSION_ENDED = (
    "The Python state was lost: the next execution starts in a fresh interpreter "
    "(files in /mnt/data are kept)."
)
ELSEWHERE = "the session of the earlier executions is gone: the server restarted, or another worker ran them"


def description() -> str:
    if sandbox.sessions_problem() is not None:
        return DESCRIPTION + WITHOUT_SESSIONS
    return DESCRIPTION + WITH_SESSIONS.format(idle=sessions.duration(config.session_idle_seconds()))


workdir_for = config.workdir_for


def safe_name(name: str) -> str:
    cleaned = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "file"
    return cleaned[:100]


class CodeInterpreter:
    type = "code_interpreter"

    def function_spec(self, run: Run, tool: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": "code_interpreter",
            "description": description(),
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The Python code to run."}},
                "required": ["code"],
            },
        }

    async def shutdown(self) -> None:
        """The executor stops: end the Python sessions of its event loop (tools.hosted.shutdown)."""
        await sessions.shutdown()

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
        seeding = await db(seed_workdir)(ctx.run, workdir)
        try:
            if sandbox.sessions_problem() is None:
                pool = sessions.default_pool(exists=_existing_threads)
                result = await pool.execute(ctx.run.thread_id, code, workdir)
                if result.fresh_session and result.state_lost is None:
                    earlier = await db(_ran_code_before)(ctx)
                    result.state_lost = ELSEWHERE if earlier else None
            else:
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
        files, storing = await db(store_outputs)(ctx.run, workdir, result.files)
        notes = [*seeding, *result.notes, *storing]
        if result.session_ended:
            notes.append(SESSION_ENDED)
        if notes:
            logs = "\n".join([logs.rstrip(), *notes]).lstrip()
        # First, and kept for the model however long the output: it explains a NameError below.
        lost = STATE_LOST.format(reason=result.state_lost) + "\n" if result.state_lost else ""
        tail = logs[-MAX_LOGS_FOR_MODEL:]
        logs = lost + logs
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
        for_model = lost + tail if logs else "(no output)"
        if files:
            for_model += "\nFiles written: " + ", ".join(f"sandbox:/mnt/data/{f['name']}" for f in files)
        return hosted.ToolOutcome(
            output=for_model,
            tool_call={"type": "code_interpreter", "code_interpreter": {"input": code, "outputs": outputs}},
            files=files,
        )


async def _existing_threads(ids: list[str]) -> set[str]:
    return await db(_existing)(ids)


def _existing(ids: list[str]) -> set[str]:
    return set(Thread.objects.filter(id__in=ids).values_list("id", flat=True))


def _ran_code_before(ctx: hosted.ToolContext) -> bool:
    """Whether an earlier step of the thread ran code (a fresh session then lost its state)."""
    steps = (
        RunStep.objects.filter(run__thread_id=ctx.run.thread_id, type="tool_calls")
        .exclude(id=ctx.step_id)
        .order_by("-id")
        .values_list("step_details", flat=True)[:50]
    )
    return any(
        call.get("type") == "code_interpreter"
        for details in steps
        for call in (details or {}).get("tool_calls", [])
    )


def parse_code(arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        # Some models send the code itself instead of {"code": ...}.
        return arguments
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) else arguments


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


def _attached_files(run: Run) -> list[File]:
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
    return list(File.objects.live().filter(id__in=set(ids), owner_id__in=owners).order_by("id"))


def seed_workdir(run: Run, workdir: Path) -> list[str]:
    """Copy in the files this run may use; never overwrite what the code already changed.

    Link-safe (workdir.py): a name the code took, a dangling symlink included, is left alone, so a
    link planted in /mnt/data can never make the server write elsewhere. Returns notes for the logs.
    """
    limits = sandbox.Limits()
    notes = []
    uid = config.host_uid()
    with wd.opened(wd.open_workdir(workdir.parent, workdir.name, uid=uid)) as fd:
        used = wd.scan(fd, max_entries=limits.workdir_max_files).disk_bytes
        for f in _attached_files(run):
            name = safe_name(f.filename)
            try:
                os.stat(name, dir_fd=fd, follow_symlinks=False)
                continue  # already there (or the code made something of that name): keep it
            except FileNotFoundError:
                pass
            if used + f.bytes > limits.workdir_bytes:
                notes.append(
                    f"{name} was not copied to /mnt/data: it would exceed the working directory's "
                    f"quota of {config.human_bytes(limits.workdir_bytes)}."
                )
                continue
            with f.data.open("rb") as src:
                if wd.write_new(fd, name, src.chunks(), uid=uid):
                    used += f.bytes
    return notes


def store_outputs(run: Run, workdir: Path, paths: list[Path]) -> tuple[list[hosted.OutputFile], list[str]]:
    """Turn the files an execution wrote into File rows of the thread's owner; notes for the logs.

    Read link-safely (a symlink, FIFO or device is refused, even one swapped in after the scan),
    within the per-execution count and the owner's storage quota (services/files.py).
    """
    owner_id = Thread.objects.filter(id=run.thread_id).values_list("owner_id", flat=True).get()
    out: list[hosted.OutputFile] = []
    notes: list[str] = []
    limit = config.max_output_files()
    max_bytes = int(settings.FILE_UPLOAD_MAX_BYTES)
    with wd.opened(wd.open_workdir(workdir.parent, workdir.name, uid=None, create=False)) as fd:
        for i, rel in enumerate(paths):
            name = str(rel)
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                notes.append(f"{shown}: skipped, the file name is not valid UTF-8.")
                continue
            if len(out) >= limit:
                notes.append(
                    f"Only the first {limit} files written were kept as outputs; "
                    f"{len(paths) - i} more were left in /mnt/data."
                )
                break
            try:
                data = wd.read_regular(fd, name, max_bytes)
            except OSError:
                continue  # not a regular file any more (or gone): never followed
            if data is None:
                notes.append(f"{name}: not kept as an output, it is larger than {max_bytes} bytes.")
                continue
            try:
                f = store_file(
                    owner_id,
                    ContentFile(data),
                    filename=rel.name,
                    purpose=OUTPUT_PURPOSE,
                    origin_thread_id=run.thread_id,
                )
            except StorageQuotaExceeded as exc:
                notes.append(f"{name} and any later files were not saved: {exc.message}")
                break
            out.append({"file_id": f.id, "name": name, "image": rel.suffix.lower() in IMAGE_SUFFIXES})
    return out, notes


hosted.register(CodeInterpreter())
