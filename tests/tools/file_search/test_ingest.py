"""File search ingestion: real files of every supported type, failures, idempotence, leases."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from assistants_app.models import Chunk, File, VectorStore, VectorStoreFile, VectorStoreFileBatch
from assistants_app.tools.file_search.chunk import (
    ChunkingParams,
    ChunkingStrategyError,
    chunk_text,
    chunking_strategy_to_api,
    get_encoding,
    parse_chunking_strategy,
)
from assistants_app.tools.file_search.extract import ExtractionError, extract_text
from assistants_app.tools.file_search.index import delete_file_chunks
from assistants_app.tools.file_search.ingest import claim_and_ingest_pending, ingest_vector_store_file
from assistants_app.tools.file_search.search import search

pytestmark = pytest.mark.django_db


# --- real files, generated here ------------------------------------------------------------------


def make_pdf(lines: list[str]) -> bytes:
    """A minimal valid PDF (Helvetica text, correct xref offsets) that pypdf can extract."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    from docx import Document

    doc = Document()
    doc.add_heading("Quarterly report", level=1)
    for p in paragraphs:
        doc.add_paragraph(p)
    if table:
        t = doc.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                t.cell(r, c).text = value
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


HTML = b"""<!doctype html><html><head><title>Volcano guide</title>
<style>.x { color: red } </style><script>var secretTracker = "analyticsbeacon";</script></head>
<body><nav>Home</nav><h1>Stratovolcanoes</h1><p>A stratovolcano is built from layers of hardened
lava &amp; tephra.</p><noscript>enablejavascriptplease</noscript><p>Mount Fuji is an example.</p></body></html>"""

SAMPLES: dict[str, tuple[str, bytes, str, list[str]]] = {
    # name: (filename, bytes, a phrase that must be in the text, strings that must not be)
    "txt": ("notes.txt", b"The quokka is a small marsupial found on Rottnest Island.\n", "quokka", []),
    "md": (
        "readme.md",
        b"# Setup\n\nRun `make bootstrap` to install the **flux capacitor**.\n",
        "flux capacitor",
        [],
    ),
    "html": (
        "guide.html",
        HTML,
        "stratovolcano is built from layers",
        ["secretTracker", "color: red", "enablejavascript"],
    ),
    "pdf": (
        "paper.pdf",
        make_pdf(["Photosynthesis converts light energy", "into chemical energy in chloroplasts."]),
        "Photosynthesis converts light energy",
        [],
    ),
    "docx": (
        "report.docx",
        make_docx(["Revenue grew in the northern region."], [["region", "revenue"], ["north", "4200"]]),
        "Revenue grew in the northern region",
        [],
    ),
    "json": (
        "config.json",
        json.dumps({"service": "billing", "retries": 3, "owner": "zephyr team"}).encode(),
        "zephyr team",
        [],
    ),
    "csv": (
        "people.csv",
        b"name,occupation\nAda Lovelace,mathematician\nGrace Hopper,admiral\n",
        "occupation: admiral",
        [],
    ),
    "py": (
        "tool.py",
        b"def fibonacci_sequence(n):\n    '''Return the first n Fibonacci numbers.'''\n    return n\n",
        "def fibonacci_sequence",
        [],
    ),
}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def user(alice):
    return alice


@pytest.fixture
def store(user):
    return VectorStore.objects.create(owner=user, name="docs")


def add_file(store: VectorStore, filename: str, data: bytes, **vs_kwargs) -> VectorStoreFile:
    f = File(
        owner=store.owner,
        filename=filename,
        purpose="assistants",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    f.data.save(filename, ContentFile(data), save=False)
    f.save()
    return VectorStoreFile.objects.create(vector_store=store, file=f, **vs_kwargs)


def refreshed(vs_file: VectorStoreFile) -> VectorStoreFile:
    vs_file.refresh_from_db()
    return vs_file


def fts_integrity_ok() -> None:
    """On SQLite, FTS5 checks that its index matches the chunk table exactly (raises otherwise)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO assistants_app_chunk_fts(assistants_app_chunk_fts, rank) VALUES ('integrity-check', 1)"
            )


# --- each type extracts and chunks -----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_type_extracts_chunks_and_completes(store, kind):
    filename, data, phrase, forbidden = SAMPLES[kind]
    extracted = extract_text(data, filename)
    assert phrase in " ".join(extracted.text.split())
    for bad in forbidden:
        assert bad not in extracted.text

    vs_file = add_file(store, filename, data)
    assert ingest_vector_store_file(vs_file.pk) == "completed"
    vs_file = refreshed(vs_file)
    assert vs_file.last_error is None
    assert vs_file.chunk_count >= 1
    assert vs_file.usage_bytes > 0
    chunks = list(Chunk.objects.filter(vs_file=vs_file))
    assert len(chunks) == vs_file.chunk_count
    for c in chunks:
        assert c.owner_id == store.owner_id and c.vector_store_id == store.id and c.file_id == vs_file.file_id
        assert extracted.text[c.start_offset : c.end_offset] == c.text
        assert c.token_count == len(get_encoding().encode_ordinary(c.text)) or c.token_count > 0
    assert any(phrase in " ".join(c.text.split()) for c in chunks)
    fts_integrity_ok()


def test_content_sniffing_without_extension():
    assert extract_text(make_pdf(["sniffed portable document"]), "upload").kind == "pdf"
    assert extract_text(make_docx(["sniffed word document"]), "upload").kind == "docx"
    assert extract_text(HTML, "page").kind == "html"
    assert extract_text(b'{"k": "v"}', "data").kind == "json"
    assert extract_text("plain café text".encode("cp1252"), "legacy.txt").text == "plain café text"
    assert extract_text("utf16 text".encode("utf-16"), "wide.txt").text.strip() == "utf16 text"


@pytest.mark.parametrize(
    ("filename", "data", "code"),
    [
        (
            "broken.pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\nthis is not a pdf body",
            "invalid_file",
        ),
        ("fake.pdf", b"just some text pretending to be a PDF", "invalid_file"),
        ("fake.docx", b"plain text, not a zip", "invalid_file"),
        ("broken.docx", b"PK\x03\x04" + b"\x00" * 64, "invalid_file"),
        ("blob.bin", bytes(range(256)) * 8, "unsupported_file"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "unsupported_file"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "invalid_file"),
        ("upload", bytes(range(256)) * 8, "unsupported_file"),
        ("empty.txt", b"", "invalid_file"),
        ("blank.md", b"   \n\n\t  \n", "invalid_file"),
        ("bad.json", b'{"unterminated": ', "invalid_file"),
        ("slides.pptx", b"PK\x03\x04whatever", "unsupported_file"),
        ("scan.pdf", make_pdf([]), "invalid_file"),
    ],
)
def test_bad_files_fail_cleanly_without_affecting_a_good_file(store, filename, data, code):
    with pytest.raises(ExtractionError) as excinfo:
        extract_text(data, filename)
    assert excinfo.value.code == code and excinfo.value.message

    bad = add_file(store, filename, data)
    good = add_file(store, "good.txt", b"Axolotls can regenerate entire limbs.")
    assert claim_and_ingest_pending("worker-1", limit=10) == 2
    bad, good = refreshed(bad), refreshed(good)
    assert bad.status == "failed"
    assert bad.last_error["code"] == code and bad.last_error["message"]  # type: ignore[index]
    assert bad.chunk_count == 0 and not Chunk.objects.filter(vs_file=bad).exists()
    assert good.status == "completed" and good.chunk_count == 1
    assert [r.file_id for r in search(store.owner_id, [store.id], "axolotl regenerate limbs")] == [
        good.file_id
    ]


def test_too_large_file_fails(store, settings):
    settings.FILE_SEARCH_MAX_FILE_BYTES = 1000
    big = add_file(store, "big.txt", b"word " * 300)
    ok = add_file(store, "small.txt", b"small file about herons")
    claim_and_ingest_pending("w", limit=5)
    assert refreshed(big).status == "failed"
    assert refreshed(big).last_error["code"] == "invalid_file"  # type: ignore[index]
    assert "too large" in refreshed(big).last_error["message"]  # type: ignore[index]
    assert refreshed(ok).status == "completed"


def test_too_many_tokens_fails(store, settings):
    settings.FILE_SEARCH_MAX_FILE_TOKENS = 50
    vs_file = add_file(store, "long.txt", b"tokens " * 200)
    assert ingest_vector_store_file(vs_file.pk) == "failed"
    assert refreshed(vs_file).last_error["code"] == "invalid_file"  # type: ignore[index]


def test_file_of_another_owner_is_refused(store, bob):
    foreign_store = VectorStore.objects.create(owner=bob)
    vs_file = add_file(foreign_store, "x.txt", b"secret text")
    vs_file.vector_store = store  # an API bug that attached someone else's file
    vs_file.save()
    assert ingest_vector_store_file(vs_file.pk) == "failed"
    assert not Chunk.objects.exists()


# --- idempotence and deletion --------------------------------------------------------------------------


def test_reingest_is_idempotent(store):
    text = " ".join(f"sentence {i} about glaciers and moraines." for i in range(400)).encode()
    vs_file = add_file(store, "glaciers.txt", text)
    assert ingest_vector_store_file(vs_file.pk) == "completed"
    first = list(
        Chunk.objects.filter(vs_file=vs_file).values_list("ordinal", "text", "start_offset", "end_offset")
    )
    assert len(first) > 1
    # A plain second call does nothing; a forced one rebuilds the same chunks without duplicates.
    assert ingest_vector_store_file(vs_file.pk) == "completed"
    assert ingest_vector_store_file(vs_file.pk, force=True) == "completed"
    again = list(
        Chunk.objects.filter(vs_file=vs_file).values_list("ordinal", "text", "start_offset", "end_offset")
    )
    assert again == first
    assert refreshed(vs_file).chunk_count == len(first)
    results = search(store.owner_id, [store.id], "glaciers moraines", max_num_results=50)
    assert len({r.chunk_id for r in results}) == len(results) == min(50, len(first))
    fts_integrity_ok()


def test_deleting_a_file_removes_its_chunks_from_the_index(store):
    a = add_file(store, "a.txt", b"Pangolins are covered in keratin scales.")
    b = add_file(store, "b.txt", b"Narwhals have a long spiral tusk.")
    claim_and_ingest_pending("w", limit=5)
    assert search(store.owner_id, [store.id], "pangolin keratin")
    assert delete_file_chunks(vs_file_id=a.pk) == 1
    assert search(store.owner_id, [store.id], "pangolin keratin") == []
    fts_integrity_ok()
    # ORM cascades (deleting the File row) reach the lexical index too.
    File.objects.filter(pk=b.file_id).delete()
    assert not Chunk.objects.exists()
    assert search(store.owner_id, [store.id], "narwhal tusk") == []
    fts_integrity_ok()


# --- chunking strategy -------------------------------------------------------------------------------------


def test_static_chunking_strategy_is_honoured(store):
    text = " ".join(f"w{i}" for i in range(3000))
    strategy = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}}
    vs_file = add_file(store, "words.txt", text.encode(), chunking_strategy=strategy)
    assert ingest_vector_store_file(vs_file.pk) == "completed"
    chunks = list(Chunk.objects.filter(vs_file=vs_file).order_by("ordinal"))
    n_tokens = len(get_encoding().encode_ordinary(text))
    assert all(c.token_count <= 100 for c in chunks)
    assert len(chunks) == -(-(n_tokens - 50) // 50)  # ceil((n - overlap) / stride)
    for prev, cur in itertools.pairwise(chunks):
        assert cur.start_offset < prev.end_offset  # windows overlap
    auto = add_file(store, "words2.txt", text.encode())
    ingest_vector_store_file(auto.pk)
    assert max(Chunk.objects.filter(vs_file=auto).values_list("token_count", flat=True)) == 800


def test_chunk_offsets_are_exact_for_multibyte_text():
    text = "Zürich \u2013 naïve café 😀 日本語のテキスト。" * 300
    for params in (ChunkingParams(100, 0), ChunkingParams(137, 60)):
        chunks = chunk_text(text, params)
        assert chunks[0].start_offset == 0 and chunks[-1].end_offset == len(text)
        assert all(text[c.start_offset : c.end_offset] == c.text for c in chunks)


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "fancy"},
        {"type": "static"},
        {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}},
        {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": -1}},
        {"type": "static", "static": {"max_chunk_size_tokens": "800", "chunk_overlap_tokens": 400}},
        {"type": "static", "static": {"max_chunk_size_tokens": True, "chunk_overlap_tokens": 0}},
        {"type": "auto", "static": {}},
        ["auto"],
    ],
)
def test_invalid_chunking_strategies_are_rejected(raw):
    with pytest.raises(ChunkingStrategyError) as excinfo:
        parse_chunking_strategy(raw)
    assert excinfo.value.param.startswith("chunking_strategy") and excinfo.value.message


def test_valid_chunking_strategies():
    assert parse_chunking_strategy(None) == ChunkingParams(800, 400)
    assert parse_chunking_strategy({"type": "auto"}) == ChunkingParams(800, 400)
    static = {"type": "static", "static": {"max_chunk_size_tokens": 4096, "chunk_overlap_tokens": 2048}}
    assert parse_chunking_strategy(static) == ChunkingParams(4096, 2048)
    assert chunking_strategy_to_api(parse_chunking_strategy({"type": "auto"})) == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


def test_stored_invalid_chunking_strategy_fails_the_file(store):
    vs_file = add_file(store, "a.txt", b"text", chunking_strategy={"type": "static", "static": {}})
    assert ingest_vector_store_file(vs_file.pk) == "failed"
    assert refreshed(vs_file).last_error["code"] == "server_error"  # type: ignore[index]


# --- claims and leases ---------------------------------------------------------------------------------------


def test_a_live_claim_is_never_taken_and_an_expired_one_is(store):
    vs_file = add_file(store, "a.txt", b"Lemurs live on Madagascar.")
    future = timezone.now() + timedelta(minutes=5)
    VectorStoreFile.objects.filter(pk=vs_file.pk).update(
        claimed_by="worker-dead", claim_expires_at=future, attempts=1
    )
    assert claim_and_ingest_pending("worker-2", limit=5) == 0
    assert ingest_vector_store_file(vs_file.pk) == "in_progress"  # a direct call respects the lease too
    assert not Chunk.objects.exists()

    past = timezone.now() - timedelta(seconds=1)
    VectorStoreFile.objects.filter(pk=vs_file.pk).update(claim_expires_at=past)  # the worker was killed
    assert claim_and_ingest_pending("worker-2", limit=5) == 1
    vs_file = refreshed(vs_file)
    assert vs_file.status == "completed" and vs_file.attempts == 2 and vs_file.claimed_by == ""
    assert claim_and_ingest_pending("worker-3", limit=5) == 0


def test_file_whose_attempts_are_exhausted_fails(store, settings):
    settings.FILE_SEARCH_MAX_ATTEMPTS = 2
    vs_file = add_file(store, "a.txt", b"text")
    past = timezone.now() - timedelta(seconds=1)
    VectorStoreFile.objects.filter(pk=vs_file.pk).update(claimed_by="dead", claim_expires_at=past, attempts=2)
    assert claim_and_ingest_pending("w", limit=5) == 0
    vs_file = refreshed(vs_file)
    assert vs_file.status == "failed" and vs_file.last_error["code"] == "server_error"  # type: ignore[index]


def test_lost_claim_writes_nothing(store, monkeypatch):
    from assistants_app.tools.file_search import ingest

    vs_file = add_file(store, "a.txt", b"Tardigrades survive vacuum.")
    real_chunk_text = ingest.chunk_text  # type: ignore[attr-defined]

    def cancel_meanwhile(text, params):
        # The user cancels while this worker is busy chunking.
        VectorStoreFile.objects.filter(pk=vs_file.pk).update(status="cancelled")
        return real_chunk_text(text, params)

    monkeypatch.setattr(ingest, "chunk_text", cancel_meanwhile)
    assert ingest_vector_store_file(vs_file.pk) == "cancelled"
    assert not Chunk.objects.exists()


def test_transient_error_is_retried_then_fails(store, monkeypatch, settings):
    from assistants_app.tools.file_search import ingest

    settings.FILE_SEARCH_MAX_ATTEMPTS = 2
    vs_file = add_file(store, "a.txt", b"Okapis are related to giraffes.")
    monkeypatch.setattr(ingest, "embeddings_configured", lambda: True)

    def down(texts, on_batch=None):
        raise ConnectionError("embeddings endpoint down")

    monkeypatch.setattr(ingest, "embed_texts", down)
    assert ingest_vector_store_file(vs_file.pk) == "in_progress"  # released for a later retry
    assert refreshed(vs_file).claimed_by == ""
    VectorStoreFile.objects.filter(pk=vs_file.pk).update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert claim_and_ingest_pending("w", limit=1) == 1
    vs_file = refreshed(vs_file)
    assert vs_file.status == "failed" and vs_file.last_error["code"] == "server_error"  # type: ignore[index]


def test_batch_completes_when_its_last_file_finishes(store):
    batch = VectorStoreFileBatch.objects.create(vector_store=store)
    add_file(store, "a.txt", b"alpha", batch=batch)
    add_file(store, "b.bin", bytes(range(256)), batch=batch)
    claim_and_ingest_pending("w", limit=1)
    batch.refresh_from_db()
    assert batch.status == "in_progress"
    claim_and_ingest_pending("w", limit=1)
    batch.refresh_from_db()
    assert batch.status == "completed"
