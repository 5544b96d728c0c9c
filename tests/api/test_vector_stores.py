"""/v1/vector_stores through the official SDK against the real server (whose embedded executor ingests
the attached files): stores, files, batches, search, filters, isolation, validation, expiry and the
tool_resources of assistants and threads."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from openai.types import VectorStore
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ZEBRA = (
    "Field notes, chapter three. The plains zebra migration crosses the Mara river every August, "
    "following the rains north from the Serengeti. Herds of wildebeest travel with them.\n"
)
FILLER = "Unrelated paragraph about accounting ledgers, invoices and quarterly tax filings.\n"


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


def days_from_now(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def chunk_count(live: LiveServer, *, file_id: str, vector_store_id: str) -> int:
    # The server's own database: the API does not show chunks.
    rows = live.sql(
        "SELECT COUNT(*) FROM assistants_app_chunk WHERE file_id = ? AND vector_store_id = ?",
        file_id,
        vector_store_id,
    )
    return int(rows[0][0])


def wait_files(client: openai.OpenAI, vector_store_id: str, timeout: float = 20) -> VectorStore:
    deadline = time.monotonic() + timeout
    while True:
        store = client.vector_stores.retrieve(vector_store_id)
        if store.file_counts.in_progress == 0 or time.monotonic() > deadline:
            return store
        time.sleep(0.05)


def bad_request(call: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as err:
        call()
    assert err.value.status_code == 400 and err.value.type == "invalid_request_error"
    return err.value


# --- stores -------------------------------------------------------------------------------------------
def test_store_crud_shapes_and_pagination(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="handbook",
        description="HR",
        metadata={"team": "hr"},
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    raw = store.model_dump()
    # Exactly the SDK's fields, none extra.
    assert set(raw) == set(VectorStore.model_fields) and not store.model_extra
    assert store.id.startswith("vs_") and store.object == "vector_store" and store.name == "handbook"
    assert store.status == "completed" and store.usage_bytes == 0
    assert store.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 0,
    }
    assert store.expires_after is not None and store.expires_after.days == 7
    assert store.last_active_at is not None and store.expires_at == store.last_active_at + 7 * 86400
    assert store.metadata == {"team": "hr"}

    changed = client.vector_stores.update(store.id, name="handbook v2", metadata={"team": "people"})
    assert (
        changed.name == "handbook v2"
        and changed.metadata == {"team": "people"}
        and changed.expires_at == store.expires_at
    )
    cleared = client.vector_stores.update(store.id, expires_after=None)
    assert cleared.expires_after is None and cleared.expires_at is None and cleared.name == "handbook v2"
    assert client.vector_stores.retrieve(store.id).model_dump() == cleared.model_dump()

    more = [client.vector_stores.create(name=f"p{i}").id for i in range(3)]
    first = client.vector_stores.list(limit=2)
    assert [s.id for s in first.data] == [more[2], more[1]] and first.has_more
    second = client.vector_stores.list(limit=2, after=first.data[-1].id)
    assert [s.id for s in second.data][:2] == [more[0], store.id]
    assert [s.id for s in client.vector_stores.list(limit=3, order="asc", after=store.id).data] == more

    gone = client.vector_stores.delete(store.id)
    assert gone.model_dump() == {"id": store.id, "object": "vector_store.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
    for vs_id in more:
        client.vector_stores.delete(vs_id)


# --- files: ingestion, content, search, delete ------------------------------------------------------------
def test_upload_and_poll_ingests_then_search_content_and_delete(
    live: LiveServer, client: openai.OpenAI
) -> None:
    store = client.vector_stores.create(name="notes")
    # Other documents first: bm25 gives no weight to a term found in most of the indexed chunks.
    others = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id,
        files=[
            (f"other{i}.txt", (FILLER + f"Memo {i} about the river ferry timetable.").encode())
            for i in range(4)
        ],
        poll_interval_ms=50,
    )
    assert others.file_counts.completed == 4
    text = FILLER * 3 + ZEBRA + FILLER * 3
    started = time.monotonic()
    vs_file = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("field-notes.txt", text.encode()),
        attributes={"topic": "wildlife", "year": 2024, "public": True},
        poll_interval_ms=50,
    )
    ingest_seconds = time.monotonic() - started
    assert set(vs_file.model_dump()) == set(VectorStoreFile.model_fields) and not vs_file.model_extra
    assert vs_file.status == "completed" and vs_file.last_error is None, vs_file
    assert vs_file.object == "vector_store.file" and vs_file.vector_store_id == store.id
    assert vs_file.id.startswith("file-") and vs_file.usage_bytes >= len(text.encode())
    assert vs_file.attributes == {"topic": "wildlife", "year": 2024, "public": True}
    assert vs_file.chunking_strategy is not None and vs_file.chunking_strategy.model_dump() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }
    assert chunk_count(live, file_id=vs_file.id, vector_store_id=store.id) == 1
    assert ingest_seconds < 10

    # The poll helper is told how long to wait.
    raw = client.vector_stores.files.with_raw_response.retrieve(vs_file.id, vector_store_id=store.id)
    assert raw.headers["openai-poll-after-ms"] == "50"

    after = client.vector_stores.retrieve(store.id)
    assert after.status == "completed" and after.file_counts.completed == 5 and after.file_counts.total == 5
    assert after.usage_bytes > vs_file.usage_bytes

    content = client.vector_stores.files.content(vs_file.id, vector_store_id=store.id)
    assert [(c.type, c.text) for c in content.data] == [("text", text)]

    results = client.vector_stores.search(store.id, query="When does the zebra migration cross the river?")
    assert results.data, "search found nothing"
    hit = results.data[0]
    assert hit.file_id == vs_file.id and hit.filename == "field-notes.txt" and 0 < hit.score <= 1
    assert hit.attributes == {"topic": "wildlife", "year": 2024, "public": True}
    assert "Mara river" in hit.content[0].text and hit.content[0].type == "text"
    raw_search = client.vector_stores.with_raw_response.search(
        store.id, query=["zebra", "wildebeest"], max_num_results=1
    )
    body = raw_search.http_response.json()
    assert body["object"] == "vector_store.search_results.page" and body["search_query"] == [
        "zebra",
        "wildebeest",
    ]
    assert len(body["data"]) == 1 and body["has_more"] is False and body["next_page"] is None
    assert (
        client.vector_stores.search(store.id, query="zebra", ranking_options={"score_threshold": 1.0}).data
        == []
    )
    assert client.vector_stores.search(store.id, query="zebra", rewrite_query=False).data

    # Attaching the same file again changes nothing (same row, no new ingestion).
    again = client.vector_stores.files.create(vector_store_id=store.id, file_id=vs_file.id)
    assert again.status == "completed" and again.created_at == vs_file.created_at
    assert client.vector_stores.retrieve(store.id).file_counts.total == 5

    updated = client.vector_stores.files.update(
        vs_file.id, vector_store_id=store.id, attributes={"topic": "zoology"}
    )
    assert updated.attributes == {"topic": "zoology"}
    assert client.vector_stores.search(store.id, query="zebra").data[0].attributes == {"topic": "zoology"}
    assert (
        client.vector_stores.files.update(vs_file.id, vector_store_id=store.id, attributes=None).attributes
        == {}
    )

    deleted = client.vector_stores.files.delete(vs_file.id, vector_store_id=store.id)
    assert deleted.model_dump() == {"id": vs_file.id, "object": "vector_store.file.deleted", "deleted": True}
    assert chunk_count(live, file_id=vs_file.id, vector_store_id=store.id) == 0
    assert client.vector_stores.search(store.id, query="zebra migration").data == []
    assert client.files.retrieve(vs_file.id).id == vs_file.id  # the File itself stays
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(vs_file.id, vector_store_id=store.id)
    assert client.vector_stores.retrieve(store.id).file_counts.total == 4


def test_delete_store_removes_its_chunks(live: LiveServer, client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="doomed")
    vs_file = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("z.md", ZEBRA.encode()), poll_interval_ms=50
    )
    assert vs_file.status == "completed"
    assert chunk_count(live, file_id=vs_file.id, vector_store_id=store.id) == 1
    client.vector_stores.delete(store.id)
    assert chunk_count(live, file_id=vs_file.id, vector_store_id=store.id) == 0
    assert client.files.retrieve(vs_file.id).id == vs_file.id


def test_static_chunking_and_attribute_filters(live: LiveServer, client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="filters")
    long_text = " ".join(f"Sentence {i} mentions the zebra herd and its grazing grounds." for i in range(120))
    a = client.files.create(file=("a.txt", long_text.encode()), purpose="assistants")
    b = client.files.create(
        file=("b.txt", ("The zebra foal stays close to its mother. " * 5).encode()), purpose="assistants"
    )
    small: Any = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}}
    fa = client.vector_stores.files.create_and_poll(
        a.id,
        vector_store_id=store.id,
        attributes={"author": "ann", "year": 2021},
        chunking_strategy=small,
        poll_interval_ms=50,
    )
    assert fa.status == "completed" and fa.chunking_strategy.model_dump() == small  # type: ignore[union-attr]
    n_chunks = chunk_count(live, file_id=a.id, vector_store_id=store.id)
    assert n_chunks > 10  # 100-token windows over ~1,700 tokens
    # The content page stitches the overlapping chunks back into the text.
    assert (
        "".join(c.text or "" for c in client.vector_stores.files.content(a.id, vector_store_id=store.id).data)
        == long_text
    )

    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id,
        files=[{"file_id": b.id, "attributes": {"author": "bo", "year": 2024}}],
        poll_interval_ms=50,
    )
    assert batch.status == "completed" and batch.file_counts.completed == 1

    def files_for(filters: Any) -> set[str]:
        return {
            r.file_id
            for r in client.vector_stores.search(
                store.id, query="zebra", filters=filters, max_num_results=50
            ).data
        }

    assert files_for({"type": "eq", "key": "author", "value": "ann"}) == {a.id}
    assert files_for({"type": "gte", "key": "year", "value": 2022}) == {b.id}
    assert files_for({"type": "in", "key": "author", "value": ["ann", "bo"]}) == {a.id, b.id}
    assert files_for(
        {
            "type": "and",
            "filters": [
                {"type": "ne", "key": "author", "value": "ann"},
                {"type": "lt", "key": "year", "value": 2030},
            ],
        }
    ) == {b.id}
    assert files_for({"type": "eq", "key": "author", "value": "nobody"}) == set()
    err = bad_request(
        lambda: client.vector_stores.search(
            store.id,
            query="zebra",
            filters={"type": "like", "key": "a", "value": "b"},  # type: ignore[arg-type]
        )
    )
    assert err.param == "filters.type"
    err = bad_request(
        lambda: client.vector_stores.search(
            store.id,
            query="zebra",
            filters={"type": "or", "filters": [{"type": "eq", "key": "a", "value": {"x": 1}}]},
        )
    )
    assert err.param == "filters.filters[0].value"

    # Listing and filtering files; the SDK's auto-pagination walks every page.
    listed = client.vector_stores.files.list(vector_store_id=store.id, limit=1)
    assert len(listed.data) == 1 and listed.has_more
    assert {f.id for f in client.vector_stores.files.list(vector_store_id=store.id, limit=1)} == {a.id, b.id}
    assert [f.id for f in client.vector_stores.files.list(vector_store_id=store.id, order="asc")] == [
        a.id,
        b.id,
    ]
    assert client.vector_stores.files.list(vector_store_id=store.id, filter="failed").data == []
    assert [
        f.id for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    ] == [b.id]


def test_batch_with_bad_files_fails_them_and_completes_the_good_one(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="mixed")
    binary = bytes(range(256)) * 16
    batch = client.vector_stores.file_batches.upload_and_poll(
        vector_store_id=store.id,
        files=[("good.txt", ZEBRA.encode()), ("blob.bin", binary), ("empty.txt", b""), ("fake.txt", binary)],
        poll_interval_ms=50,
    )
    assert set(batch.model_dump()) == set(VectorStoreFileBatch.model_fields) and not batch.model_extra
    assert batch.object == "vector_store.files_batch" and batch.id.startswith("vsfb_")
    assert batch.status == "completed"
    assert batch.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 1,
        "failed": 3,
        "cancelled": 0,
        "total": 4,
    }
    failed = list(
        client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="failed")
    )
    assert len(failed) == 3
    for f in failed:
        assert f.status == "failed" and f.last_error is not None
        assert f.last_error.code in ("invalid_file", "unsupported_file") and f.last_error.message
    done = client.vector_stores.files.list(vector_store_id=store.id, filter="completed").data
    assert len(done) == 1 and done[0].last_error is None
    assert client.vector_stores.search(store.id, query="zebra migration").data[0].file_id == done[0].id
    store_now = client.vector_stores.retrieve(store.id)
    assert store_now.status == "completed" and store_now.file_counts.failed == 3

    # A failed file attached again is queued again (and fails again).
    retry = client.vector_stores.files.create_and_poll(
        failed[0].id, vector_store_id=store.id, poll_interval_ms=50
    )
    assert retry.status == "failed"


def test_batch_cancel(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="cancel me")
    ids = [
        client.files.create(file=(f"n{i}.txt", (ZEBRA * 20).encode()), purpose="assistants").id
        for i in range(40)
    ]
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    assert batch.status in ("in_progress", "completed") and batch.file_counts.total == 40
    cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled", cancelled
    assert cancelled.file_counts.in_progress == 0 and cancelled.file_counts.cancelled > 0
    assert cancelled.file_counts.cancelled + cancelled.file_counts.completed == 40
    time.sleep(0.5)  # a worker that was mid-file must not complete a cancelled one
    later = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    assert later.model_dump() == cancelled.model_dump()
    gone = client.vector_stores.file_batches.list_files(
        batch.id, vector_store_id=store.id, filter="cancelled", limit=100
    ).data
    assert len(gone) == cancelled.file_counts.cancelled
    # Cancelling again is harmless; re-attaching a cancelled file ingests it.
    assert client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id).status == "cancelled"
    redo = client.vector_stores.files.create_and_poll(
        gone[0].id, vector_store_id=store.id, poll_interval_ms=50
    )
    assert redo.status == "completed"


# --- validation -------------------------------------------------------------------------------------------
def test_validation_names_the_parameter(client: openai.OpenAI) -> None:
    f = client.files.create(file=("v.txt", b"valid text"), purpose="assistants")
    store = client.vector_stores.create(name="validation")
    cases: list[tuple[Any, str]] = [
        (
            lambda: client.vector_stores.create(
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 300},
                }
            ),
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        (
            lambda: client.vector_stores.create(
                file_ids=[f.id],
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0},
                },
            ),
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            lambda: client.vector_stores.files.create(
                vector_store_id=store.id,
                file_id=f.id,
                chunking_strategy={"type": "other"},  # type: ignore[arg-type]
            ),
            "chunking_strategy.type",
        ),
        (
            lambda: client.vector_stores.file_batches.create(
                vector_store_id=store.id,
                files=[
                    {
                        "file_id": f.id,
                        "chunking_strategy": {
                            "type": "static",
                            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101},
                        },
                    }
                ],
            ),
            "files[0].chunking_strategy.static.chunk_overlap_tokens",
        ),
        (lambda: client.vector_stores.create(extra_body={"colour": "red"}), "colour"),
        (
            lambda: client.vector_stores.create(expires_after={"anchor": "created_at", "days": 1}),  # type: ignore[arg-type]
            "expires_after.anchor",
        ),
        (lambda: client.vector_stores.create(file_ids=["file-nope"]), "file_ids[0]"),
        (lambda: client.vector_stores.files.create(vector_store_id=store.id, file_id="file-nope"), "file_id"),
        (
            lambda: client.vector_stores.files.create(
                vector_store_id=store.id,
                file_id=f.id,
                attributes={"k": {"nested": 1}},  # type: ignore[dict-item]
            ),
            "attributes.k",
        ),
        (lambda: client.vector_stores.file_batches.create(vector_store_id=store.id), "file_ids"),
        (
            lambda: client.vector_stores.file_batches.create(
                vector_store_id=store.id, file_ids=[f.id], files=[{"file_id": f.id}]
            ),
            "files",
        ),
        (lambda: client.vector_stores.search(store.id, query="x", max_num_results=51), "max_num_results"),
        (lambda: client.vector_stores.search(store.id, query="   "), "query"),
        (
            lambda: client.vector_stores.search(store.id, query="x", ranking_options={"score_threshold": 2}),
            "ranking_options.score_threshold",
        ),
        (lambda: client.vector_stores.files.list(vector_store_id=store.id, filter="done"), "filter"),  # type: ignore[arg-type]
        (
            lambda: client.vector_stores.files.update(
                f.id, vector_store_id=store.id, attributes={}, extra_body={"status": "completed"}
            ),
            "status",
        ),
    ]
    for call, param in cases:
        err = bad_request(call)
        assert err.param == param, (param, err.message)
    assert client.vector_stores.list(limit=100).data[0].id == store.id  # the rejected creates made nothing


# --- isolation ----------------------------------------------------------------------------------------------
def test_other_users_stores_and_files_are_invisible(live: LiveServer, client: openai.OpenAI) -> None:
    bob = live.client("bob")
    store = client.vector_stores.create(name="alice private")
    secret = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("secret.txt", ZEBRA.encode()), poll_interval_ms=50
    )
    for call in (
        lambda: bob.vector_stores.retrieve(store.id),
        lambda: bob.vector_stores.update(store.id, name="mine"),
        lambda: bob.vector_stores.delete(store.id),
        lambda: bob.vector_stores.search(store.id, query="zebra"),
        lambda: bob.vector_stores.files.list(vector_store_id=store.id),
        lambda: bob.vector_stores.files.retrieve(secret.id, vector_store_id=store.id),
        lambda: bob.vector_stores.files.content(secret.id, vector_store_id=store.id),
        lambda: bob.vector_stores.files.create(vector_store_id=store.id, file_id=secret.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert store.id not in {s.id for s in bob.vector_stores.list(limit=100)}

    own = bob.vector_stores.create(name="bob")
    err = bad_request(lambda: bob.vector_stores.files.create(vector_store_id=own.id, file_id=secret.id))
    assert err.param == "file_id" and secret.id in err.message
    err = bad_request(lambda: bob.vector_stores.create(file_ids=[secret.id]))
    assert err.param == "file_ids[0]"
    err = bad_request(
        lambda: bob.vector_stores.file_batches.create(vector_store_id=own.id, file_ids=[secret.id])
    )
    assert err.param == "file_ids[0]"
    err = bad_request(
        lambda: bob.beta.assistants.create(
            model="m", tool_resources={"file_search": {"vector_store_ids": [store.id]}}
        )
    )
    assert err.param == "tool_resources.file_search.vector_store_ids[0]"
    err = bad_request(
        lambda: bob.beta.threads.create(
            tool_resources={"file_search": {"vector_stores": [{"file_ids": [secret.id]}]}}
        )
    )
    assert err.param == "tool_resources.file_search.vector_stores[0].file_ids[0]"
    assert bob.vector_stores.search(own.id, query="zebra").data == []
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1


# --- expiry -------------------------------------------------------------------------------------------------
def test_expired_store(live: LiveServer, client: openai.OpenAI) -> None:
    store = client.vector_stores.create(
        name="short-lived", expires_after={"anchor": "last_active_at", "days": 1}
    )
    f = client.files.create(file=("e.txt", ZEBRA.encode()), purpose="assistants")
    live.sql(  # a day later
        "UPDATE assistants_app_vectorstore SET last_active_at = ?, expires_at = ? WHERE id = ?",
        days_from_now(-2),
        days_from_now(-1),
        store.id,
    )
    expired = client.vector_stores.retrieve(store.id)
    assert expired.status == "expired" and expired.expires_at is not None and expired.expires_at < time.time()
    for call in (
        lambda: client.vector_stores.search(store.id, query="zebra"),
        lambda: client.vector_stores.files.create(vector_store_id=store.id, file_id=f.id),
        lambda: client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[f.id]),
        lambda: client.vector_stores.update(store.id, expires_after={"anchor": "last_active_at", "days": 30}),
    ):
        assert bad_request(call).code == "vector_store_expired"
    err = bad_request(
        lambda: client.beta.assistants.create(
            model="m", tool_resources={"file_search": {"vector_store_ids": [store.id]}}
        )
    )
    assert err.code == "vector_store_expired"
    assert client.vector_stores.update(store.id, name="renamed").status == "expired"
    assert client.vector_stores.delete(store.id).deleted


def test_search_bumps_last_active_at(live: LiveServer, client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="active", expires_after={"anchor": "last_active_at", "days": 3})
    live.sql(
        "UPDATE assistants_app_vectorstore SET last_active_at = ?, expires_at = ? WHERE id = ?",
        days_from_now(-1),
        days_from_now(2),
        store.id,
    )
    before = client.vector_stores.retrieve(store.id)
    client.vector_stores.search(store.id, query="anything")
    after = client.vector_stores.retrieve(store.id)
    assert after.last_active_at is not None and before.last_active_at is not None
    assert after.last_active_at - before.last_active_at >= 86400 - 5
    assert after.expires_at == after.last_active_at + 3 * 86400


# --- tool_resources of assistants and threads ----------------------------------------------------------------
def test_tool_resources_attach_and_create_inline_stores(client: openai.OpenAI) -> None:
    f = client.files.create(file=("inline.txt", ZEBRA.encode()), purpose="assistants")
    assistant = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={
            "file_search": {
                "vector_stores": [
                    {
                        "file_ids": [f.id],
                        "metadata": {"source": "inline"},
                        "chunking_strategy": {
                            "type": "static",
                            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
                        },
                    }
                ]
            }
        },
    )
    ids = assistant.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert ids is not None and len(ids) == 1
    store = wait_files(client, ids[0])
    assert store.metadata == {"source": "inline"} and store.file_counts.completed == 1
    vs_file = client.vector_stores.files.retrieve(f.id, vector_store_id=store.id)
    assert vs_file.chunking_strategy.model_dump()["static"]["max_chunk_size_tokens"] == 200  # type: ignore[union-attr]
    assert client.vector_stores.search(store.id, query="zebra").data[0].file_id == f.id

    other = client.vector_stores.create(name="other")
    moved = client.beta.assistants.update(
        assistant.id, tool_resources={"file_search": {"vector_store_ids": [other.id]}}
    )
    assert moved.tool_resources.file_search.vector_store_ids == [other.id]  # type: ignore[union-attr]
    err = bad_request(
        lambda: client.beta.assistants.update(
            assistant.id, tool_resources={"file_search": {"vector_store_ids": [other.id, store.id]}}
        )
    )
    assert err.param == "tool_resources.file_search.vector_store_ids"
    err = bad_request(
        lambda: client.beta.assistants.create(
            model="m",
            tool_resources={
                "file_search": {"vector_store_ids": [other.id], "vector_stores": [{"file_ids": [f.id]}]}
            },
        )
    )
    assert err.param == "tool_resources.file_search.vector_stores"

    thread = client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": [other.id]}})
    assert thread.tool_resources.file_search.vector_store_ids == [other.id]  # type: ignore[union-attr]
    inline = client.beta.threads.create(
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [f.id]}]}}
    )
    inline_ids = inline.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert inline_ids and inline_ids[0] not in (store.id, other.id)
    assert wait_files(client, inline_ids[0]).file_counts.completed == 1

    # A rejected create leaves no inline store behind.
    count = len(client.vector_stores.list(limit=100).data)
    overlap = {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}}
    err = bad_request(
        lambda: client.beta.threads.create(
            tool_resources={
                "file_search": {"vector_stores": [{"file_ids": [f.id], "chunking_strategy": overlap}]}
            }  # type: ignore[arg-type]
        )
    )
    assert (
        err.param
        == "tool_resources.file_search.vector_stores[0].chunking_strategy.static.chunk_overlap_tokens"
    )
    err = bad_request(
        lambda: client.beta.assistants.create(
            model="m",
            tool_resources={"file_search": {"vector_stores": [{"file_ids": [f.id, "file-missing"]}]}},
        )
    )
    assert err.param == "tool_resources.file_search.vector_stores[0].file_ids[1]"
    assert len(client.vector_stores.list(limit=100).data) == count


# --- in-process: objects match their published schemas and the SDK's models --------------------------------
@pytest.mark.django_db
def test_objects_match_schemas_and_sdk_models(alice) -> None:
    import jsonschema_rs

    from assistants_app.api.response_schemas import COMPONENTS
    from assistants_app.api.vector_stores import _batch_obj, _store_obj
    from assistants_app.models import File
    from assistants_app.models import VectorStoreFile as VectorStoreFileRow
    from assistants_app.serializers import vector_store_file_obj
    from assistants_app.services import vector_store_files as vs_files
    from assistants_app.services import vector_stores as svc

    f = File.objects.create(owner=alice, filename="a.txt", purpose="assistants")
    store = svc.create_store(
        alice, {"name": "s", "file_ids": [f.id], "expires_after": {"anchor": "last_active_at", "days": 2}}
    )
    batch = vs_files.create_batch(alice, store, {"file_ids": [f.id], "attributes": {"n": 1.5, "b": False}})
    row = VectorStoreFileRow.objects.get(vector_store=store, file=f)
    row.last_error = {"code": "invalid_file", "message": "bad"}
    for name, value, model in (
        ("VectorStore", _store_obj(svc.get_store(alice, store.id)), VectorStore),
        ("VectorStoreFile", vector_store_file_obj(row), VectorStoreFile),
        ("VectorStoreFileBatch", _batch_obj(batch), VectorStoreFileBatch),
    ):
        jsonschema_rs.validate({**COMPONENTS[name], "$defs": {}}, value)
        assert set(value) == set(COMPONENTS[name]["properties"]) == set(model.model_fields), name
        model.model_validate(value)


@pytest.mark.django_db
def test_batches_adopt_attached_files_and_requeue_only_what_changed(alice) -> None:
    from assistants_app.models import File
    from assistants_app.models import VectorStoreFile as Row
    from assistants_app.services import vector_store_files as vs_files
    from assistants_app.services import vector_stores as svc

    f1, f2, f3 = (
        File.objects.create(owner=alice, filename=f"{i}.txt", purpose="assistants") for i in range(3)
    )
    store = svc.create_store(alice, {"name": "s"})
    first = vs_files.create_batch(alice, store, {"file_ids": [f1.id, f2.id, f1.id]})
    assert vs_files.batch_stats(first)["in_progress"] == 2
    Row.objects.filter(file=f1).update(status="completed", chunk_count=3)
    Row.objects.filter(file=f2).update(
        status="failed", last_error={"code": "invalid_file", "message": "x"}, attempts=3
    )
    small = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    second = vs_files.create_batch(
        alice,
        store,
        {
            "files": [
                {"file_id": f1.id, "attributes": {"a": 1}},
                {"file_id": f2.id},
                {"file_id": f3.id, "chunking_strategy": small},
            ]
        },
    )
    rows = {r.file_id: r for r in Row.objects.filter(vector_store=store)}
    assert rows[f1.id].status == "completed" and rows[f1.id].attributes == {
        "a": 1
    }  # unchanged but relabelled
    assert (
        rows[f2.id].status == "in_progress" and rows[f2.id].last_error is None and rows[f2.id].attempts == 0
    )
    assert rows[f3.id].chunking_strategy == small
    assert {r.batch_id for r in rows.values()} == {second.id}
    assert vs_files.batch_stats(second) == {"in_progress": 2, "completed": 1, "failed": 0, "cancelled": 0}
    assert sum(vs_files.batch_stats(first).values()) == 0
    # A new chunking strategy re-ingests a completed file; the same one does not.
    again = vs_files.add_file(alice, store, {"file_id": f1.id})
    assert again.status == "completed"
    again = vs_files.add_file(alice, store, {"file_id": f1.id, "chunking_strategy": small})
    assert again.status == "in_progress" and again.chunking_strategy == small


@pytest.mark.django_db
def test_file_text_stitches_overlapping_chunks(alice) -> None:
    from assistants_app.models import Chunk, File
    from assistants_app.models import VectorStoreFile as Row
    from assistants_app.services import vector_store_files as vs_files
    from assistants_app.services import vector_stores as svc

    f = File.objects.create(owner=alice, filename="a.txt", purpose="assistants")
    store = svc.create_store(alice, {"name": "s", "file_ids": [f.id]})
    row = Row.objects.get(vector_store=store)
    text = "abcdefghij" + " " * 10 + "klmnop"
    for i, (start, end) in enumerate([(0, 6), (4, 10), (6, 10), (20, 26)]):
        Chunk.objects.create(
            owner=alice,
            vector_store=store,
            vs_file=row,
            file=f,
            ordinal=i,
            text=text[start:end],
            token_count=1,
            start_offset=start,
            end_offset=end,
        )
    assert vs_files.file_text(row) == ["abcdefghij", "klmnop"]
