"""The code interpreter tool's server side: seeding and collecting files link-safely, output caps,
non-UTF-8 names, and the owner's storage quota. The sandbox runs for real where bwrap works."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from assistants_app.backends import fake
from assistants_app.models import Assistant, File, Message, Run
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from assistants_app.tools.code_interpreter import sandbox
from assistants_app.tools.code_interpreter.tool import seed_workdir, store_outputs, workdir_for
from tests.support.helpers import wait_run
from tests.tools.code_interpreter.test_hosted import needs_sandbox

pytestmark = pytest.mark.usefixtures("ci_settings")


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory standing for the host's files (e.g. the venv's site-packages)."""
    path = Path(tempfile.mkdtemp(prefix="ci-host-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, model="gpt-4o", tools=[{"type": "code_interpreter"}])


def _upload(owner, name: str, data: bytes, purpose: str = "assistants") -> File:
    f = File(owner=owner, filename=name, purpose=purpose, bytes=len(data))
    f.data.save("upload", ContentFile(data), save=False)
    f.save()
    return f


def _run_with_attachments(alice, assistant, files: list[File]) -> Run:
    thread = create_thread(alice)
    post_message(
        thread,
        role="user",
        content="use these",
        attachments=[{"file_id": f.id, "tools": [{"type": "code_interpreter"}]} for f in files],
    )
    return start_run(thread, assistant)


@needs_sandbox
def test_a_link_planted_by_the_code_never_redirects_seeding(settings, alice, assistant, host_dir):
    target = host_dir / "evil.pth"  # on a real server: a .pth in site-packages, run as root
    notes = _upload(alice, "notes.txt", b"import os; os.system('id')\n")
    data = _upload(alice, "data.csv", b"a,b\n1,2\n")
    run = _run_with_attachments(alice, assistant, [notes, data])
    workdir = workdir_for(run.thread_id)
    planted = asyncio.run(
        sandbox.execute(
            f"import os\nos.symlink({str(target)!r}, '/mnt/data/notes.txt')\nos.mkfifo('/mnt/data/x.fifo')",
            workdir,
        )
    )
    assert planted.exit_code == 0, planted.logs
    assert os.path.islink(workdir / "notes.txt") and not target.exists()  # a dangling link

    seed_workdir(run, workdir)

    assert not target.exists()  # the server did not follow the link
    assert os.readlink(workdir / "notes.txt") == str(target)  # and left the code's entry alone
    assert (workdir / "data.csv").read_bytes() == b"a,b\n1,2\n"  # the positive control
    uid = sandbox._host_uid()
    if uid is not None:
        assert (workdir / "data.csv").stat().st_uid == uid


def test_seeding_skips_names_taken_by_any_kind_of_entry(settings, alice, assistant, host_dir):
    files = [_upload(alice, n, b"new") for n in ("link.txt", "fifo.txt", "dir.txt", "plain.txt", "fresh.txt")]
    run = _run_with_attachments(alice, assistant, files)
    workdir = workdir_for(run.thread_id)
    workdir.mkdir(parents=True)
    (workdir / "link.txt").symlink_to(host_dir / "made-by-server")
    os.mkfifo(workdir / "fifo.txt")  # opening it for writing would block the server
    (workdir / "dir.txt").mkdir()
    (workdir / "plain.txt").write_bytes(b"changed by the code")
    seed_workdir(run, workdir)
    assert list(host_dir.iterdir()) == []
    assert (workdir / "plain.txt").read_bytes() == b"changed by the code"
    assert (workdir / "fresh.txt").read_bytes() == b"new"


def test_seeding_respects_the_workdir_quota(settings, alice, assistant):
    settings.CODE_INTERPRETER_WORKDIR_BYTES = 64 * 1024
    small = _upload(alice, "small.txt", b"s" * 1000)
    big = _upload(alice, "big.bin", b"b" * 200_000)
    run = _run_with_attachments(alice, assistant, [small, big])
    notes = seed_workdir(run, workdir_for(run.thread_id))
    assert sorted(p.name for p in workdir_for(run.thread_id).iterdir()) == ["small.txt"]
    assert notes == [
        "big.bin was not copied to /mnt/data: it would exceed the working directory's quota of 64 KiB."
    ]


def test_outputs_are_never_read_through_a_linked_directory(settings, alice, assistant, host_dir):
    (host_dir / "secret.txt").write_text("the server's secret")
    run = _run_with_attachments(alice, assistant, [])
    workdir = workdir_for(run.thread_id)
    workdir.mkdir(parents=True)
    (workdir / "out.txt").write_text("a real output")
    # The scan saw sub/ as a directory; by the time outputs are collected it is a link to the host.
    (workdir / "sub").symlink_to(host_dir)
    files, _ = store_outputs(run, workdir, [Path("sub/secret.txt"), Path("out.txt")])
    assert [f["name"] for f in files] == ["out.txt"]
    assert not File.objects.filter(owner=alice, purpose="assistants_output", filename="secret.txt").exists()
    stored = File.objects.get(id=files[0]["file_id"])
    assert stored.data.open("rb").read() == b"a real output" and stored.origin_thread_id == run.thread_id


def test_outputs_per_execution_are_capped(settings, alice, assistant):
    settings.CODE_INTERPRETER_MAX_OUTPUT_FILES = 5
    run = _run_with_attachments(alice, assistant, [])
    workdir = workdir_for(run.thread_id)
    workdir.mkdir(parents=True)
    for i in range(100):
        (workdir / f"f{i:03}.txt").write_text("")
    files, notes = store_outputs(run, workdir, sorted(Path(p.name) for p in workdir.iterdir()))
    assert len(files) == 5
    assert File.objects.filter(owner=alice, purpose="assistants_output").count() == 5
    assert notes == ["Only the first 5 files written were kept as outputs; 95 more were left in /mnt/data."]


def test_outputs_over_the_owner_quota_are_not_saved(settings, alice, assistant):
    settings.USER_STORAGE_QUOTA_BYTES = 10_000
    kept = _upload(alice, "mine.csv", b"x" * 6000)
    run = _run_with_attachments(alice, assistant, [])
    workdir = workdir_for(run.thread_id)
    workdir.mkdir(parents=True)
    (workdir / "a.txt").write_bytes(b"a" * 3000)
    (workdir / "b.txt").write_bytes(b"b" * 3000)
    files, notes = store_outputs(run, workdir, [Path("a.txt"), Path("b.txt")])
    assert [f["name"] for f in files] == ["a.txt"]
    assert len(notes) == 1 and notes[0].startswith("b.txt and any later files were not saved: Storage quota")
    assert File.objects.filter(owner=alice).count() == 2 and File.objects.filter(id=kept.id).exists()
    media = Path(kept.data.path).parent
    assert len(list(media.iterdir())) == 2  # no orphan blob of the refused file


@needs_sandbox
def test_a_non_utf8_output_name_is_skipped_with_a_note(executor, settings, alice, assistant):
    code = (
        "open(b'caf\\xe9.txt', 'wb').write(b'latin-1 name')\nopen('ok.txt', 'w').write('fine')\nprint('done')"
    )
    fake.script(
        fake.tool_turn(("code_interpreter", json.dumps({"code": code}))),
        fake.text_turn("Wrote them."),
    )
    thread = create_thread(alice)
    post_message(thread, role="user", content="write files")
    run = wait_run(start_run(thread, assistant).id, timeout=90)
    assert run.status == "completed", run.last_error
    outputs = File.objects.filter(owner=alice, purpose="assistants_output")
    assert [f.filename for f in outputs] == ["ok.txt"]
    tool_output = fake.requests()[1].messages[-1]["content"]
    assert "caf\ufffd.txt: skipped, the file name is not valid UTF-8." in tool_output
    assert Message.objects.filter(run=run).exists()
