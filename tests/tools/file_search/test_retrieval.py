"""File search retrieval. Runs on SQLite (FTS5) and, with DATABASE_URL=postgres://..., on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import re

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.db import connection

from assistants_app.models import File, VectorStore, VectorStoreFile
from assistants_app.tools.file_search import search as search_module
from assistants_app.tools.file_search.ingest import claim_and_ingest_pending, ingest_vector_store_file
from assistants_app.tools.file_search.search import SearchError, SearchResult, search

pytestmark = pytest.mark.django_db

DOCS = {
    "volcanoes.txt": "Stratovolcanoes are conical volcanoes built up by many layers of hardened lava and tephra. "
    "Mount Fuji and Mount St. Helens are stratovolcanoes.",
    "bees.md": "# Honey bees\n\nWorker bees perform a waggle dance to tell nestmates the direction of nectar.",
    "tides.txt": "Ocean tides are caused by the gravitational pull of the Moon and the Sun on the oceans.",
    "cars.txt": "The car needs an oil change every ten thousand kilometres; check the tyre pressure monthly.",
}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def add_file(store: VectorStore, filename: str, text: str, **vs_kwargs) -> VectorStoreFile:
    data = text.encode()
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


def make_store(owner, docs: dict[str, str], **vs_kwargs) -> VectorStore:
    store = VectorStore.objects.create(owner=owner, name="kb")
    for name, text in docs.items():
        add_file(store, name, text, **vs_kwargs)
    while claim_and_ingest_pending("test-worker", limit=10):
        pass
    assert not store.vs_files.exclude(status="completed").exists()
    return store


def test_backend_is_the_configured_database():
    # Which index this run exercises: FTS5 on SQLite, tsvector + GIN on PostgreSQL (phase 2).
    expected = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert connection.vendor == expected


def test_search_finds_the_right_chunk(alice):
    store = make_store(alice, DOCS)
    results = search(alice.pk, [store.id], "What causes the tides in the ocean?")
    assert results and isinstance(results[0], SearchResult)
    assert results[0].filename == "tides.txt"
    assert "gravitational pull of the Moon" in results[0].text
    assert results[0].file_id == store.vs_files.get(file__filename="tides.txt").file_id
    assert 0 < results[0].score <= 1
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)

    top = search(alice.pk, [store.id], "waggle dance", max_num_results=1)
    assert len(top) == 1 and top[0].filename == "bees.md"
    # Stemming: "volcano" matches "volcanoes"/"stratovolcanoes" text.
    assert search(alice.pk, [store.id], "volcano layers of lava")[0].filename == "volcanoes.txt"


def test_query_text_cannot_inject_index_syntax(alice):
    store = make_store(alice, DOCS)
    for nasty in [
        '"unbalanced',
        "tides AND NOT moon",
        "text:tides*",
        "NEAR(tides moon)",
        "tides | moon & !x",
        "'; DROP",
    ]:
        results = search(alice.pk, [store.id], nasty)
        assert all(0 <= r.score <= 1 for r in results)
    assert search(alice.pk, [store.id], "???") == []


def test_owner_isolation(alice, bob):
    alice_store = make_store(alice, {"a.txt": "Alice's secret recipe uses cardamom and saffron."})
    bob_store = make_store(bob, {"b.txt": "Bob's secret recipe uses cardamom and vanilla."})
    mine = search(alice.pk, [alice_store.id], "secret recipe cardamom")
    assert [r.filename for r in mine] == ["a.txt"]
    # Naming another owner's vector store returns nothing from it.
    assert search(alice.pk, [bob_store.id], "secret recipe cardamom") == []
    both = search(alice.pk, [alice_store.id, bob_store.id], "cardamom vanilla saffron")
    assert {r.filename for r in both} == {"a.txt"}


def test_two_vector_stores_are_combined(alice):
    s1 = make_store(alice, {"bees.md": DOCS["bees.md"]})
    s2 = make_store(alice, {"bees2.md": "Bumble bees can also dance, but differently from honey bees."})
    combined = search(alice.pk, [s1.id, s2.id], "honey bees dance")
    assert {r.filename for r in combined} == {"bees.md", "bees2.md"}
    assert {r.vector_store_id for r in combined} == {s1.id, s2.id}
    assert [r.filename for r in search(alice.pk, [s2.id], "honey bees dance")] == ["bees2.md"]


def test_same_file_in_two_stores_is_returned_once(alice):
    s1 = make_store(alice, {"tides.txt": DOCS["tides.txt"]})
    s2 = VectorStore.objects.create(owner=alice)
    VectorStoreFile.objects.create(vector_store=s2, file=s1.vs_files.get().file)
    claim_and_ingest_pending("w", limit=5)
    assert len(search(alice.pk, [s1.id, s2.id], "tides moon")) == 1


def test_score_threshold_and_limits(alice):
    store = make_store(alice, DOCS)
    query = "oil change tyre pressure for the car, and the moon"
    everything = search(alice.pk, [store.id], query)
    assert {r.filename for r in everything} == {"cars.txt", "tides.txt"}
    best, weaker = everything[0], everything[1]
    assert best.filename == "cars.txt" and best.score > weaker.score
    cut = (best.score + weaker.score) / 2
    assert [r.filename for r in search(alice.pk, [store.id], query, score_threshold=cut)] == ["cars.txt"]
    assert search(alice.pk, [store.id], query, score_threshold=1.0) == []
    assert len(search(alice.pk, [store.id], query, max_num_results=1)) == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_num_results": 0}, "max_num_results"),
        ({"max_num_results": 51}, "max_num_results"),
        ({"score_threshold": 1.5}, "ranking_options.score_threshold"),
        ({"score_threshold": -0.1}, "ranking_options.score_threshold"),
        ({"query": ""}, "query"),
        ({"query": []}, "query"),
        ({"vector_store_ids": []}, "vector_store_ids"),
        ({"filters": {"type": "between", "key": "a", "value": 1}}, "filters.type"),
    ],
)
def test_invalid_requests_are_rejected(alice, kwargs, param):
    args = {"owner_id": alice.pk, "vector_store_ids": ["vs_x"], "query": "q", **kwargs}
    with pytest.raises(SearchError) as excinfo:
        search(**args)
    assert excinfo.value.param == param


def test_query_list_and_many_chunks(alice):
    long_doc = "\n".join(f"Paragraph {i}: filler text about nothing in particular." for i in range(600))
    long_doc += "\nThe hidden treasure is buried under the old lighthouse."
    store = make_store(alice, {**DOCS, "long.txt": long_doc})
    results = search(
        alice.pk, [store.id], ["where is the treasure buried", "waggle dance"], max_num_results=5
    )
    names = [r.filename for r in results]
    assert "long.txt" in names and "bees.md" in names
    treasure = next(r for r in results if r.filename == "long.txt")
    assert "lighthouse" in treasure.text


def test_attribute_filters(alice):
    store = VectorStore.objects.create(owner=alice)
    add_file(store, "2023.txt", "Annual report: revenue grew.", attributes={"year": 2023, "team": "sales"})
    add_file(store, "2024.txt", "Annual report: revenue shrank.", attributes={"year": 2024, "team": "sales"})
    add_file(store, "ops.txt", "Annual report of operations.", attributes={"year": 2024, "team": "ops"})
    claim_and_ingest_pending("w", limit=10)

    def names(f):
        return sorted(r.filename for r in search(alice.pk, [store.id], "annual report", filters=f))

    assert names({"type": "eq", "key": "year", "value": 2024}) == ["2024.txt", "ops.txt"]
    assert names(
        {
            "type": "and",
            "filters": [
                {"type": "gte", "key": "year", "value": 2024},
                {"type": "eq", "key": "team", "value": "sales"},
            ],
        }
    ) == ["2024.txt"]
    assert names({"type": "in", "key": "team", "value": ["ops"]}) == ["ops.txt"]
    assert names({"type": "eq", "key": "team", "value": "legal"}) == []
    results = search(
        alice.pk, [store.id], "revenue grew", filters={"type": "eq", "key": "year", "value": 2023}
    )
    assert results[0].attributes == {"year": 2023, "team": "sales"}


def test_deleted_and_failed_files_are_not_searched(alice):
    store = make_store(alice, DOCS)
    store.vs_files.get(file__filename="bees.md").delete()
    assert search(alice.pk, [store.id], "waggle dance") == []


# --- hybrid: a deterministic stand-in for an embeddings endpoint ---------------------------------

SYNONYMS = {"automobile": "car", "vehicle": "car", "lunar": "moon"}


def fake_embed(texts: list[str]) -> np.ndarray:
    """Hashed bag of words where synonyms share a dimension: dense finds what lexical cannot."""
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            word = SYNONYMS.get(word, word)
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


@pytest.fixture
def fake_embeddings(monkeypatch):
    from assistants_app.tools.file_search import ingest

    calls: list[int] = []

    def embed(texts, on_batch=None):
        calls.append(len(texts))
        if on_batch is not None:
            on_batch()  # the ingest lease renewal must work against the real database
        return fake_embed(texts)

    for module in (ingest, search_module):
        monkeypatch.setattr(module, "embeddings_configured", lambda: True)
        monkeypatch.setattr(module, "embed_texts", embed)
    search_module._dense_cache.clear()
    return calls


def test_hybrid_search_fuses_dense_results(alice, fake_embeddings):
    store = make_store(alice, DOCS)
    assert fake_embeddings  # chunks were embedded at ingestion
    # No chunk contains "automobile": only the dense list can find the cars document.
    results = search(alice.pk, [store.id], "automobile maintenance")
    assert results[0].filename == "cars.txt"
    assert all(0 < r.score <= 1 for r in results)
    both = search(alice.pk, [store.id], "tides of the ocean")
    assert both[0].filename == "tides.txt" and both[0].score == pytest.approx(1.0)


def test_hybrid_cache_follows_changes_and_owner(alice, bob, fake_embeddings):
    store = make_store(alice, {"cars.txt": DOCS["cars.txt"]})
    bob_store = make_store(bob, {"bob-cars.txt": "Bob's vehicle is a red car."})
    assert [r.filename for r in search(alice.pk, [store.id], "vehicle")] == ["cars.txt"]
    assert search(alice.pk, [bob_store.id], "vehicle") == []
    add_file(store, "lunar.txt", "The lunar surface is dusty.")
    claim_and_ingest_pending("w", limit=5)
    assert "lunar.txt" in [r.filename for r in search(alice.pk, [store.id], "moon dust")]
    store.vs_files.get(file__filename="cars.txt").delete()
    assert "cars.txt" not in [r.filename for r in search(alice.pk, [store.id], "vehicle")]


def test_search_falls_back_to_lexical_when_embeddings_fail(alice, fake_embeddings, monkeypatch):
    store = make_store(alice, DOCS)

    def down(texts, on_batch=None):
        raise ConnectionError("down")

    monkeypatch.setattr(search_module, "embed_texts", down)
    assert search(alice.pk, [store.id], "waggle dance")[0].filename == "bees.md"


def test_ingest_direct_call_after_store_creation(alice):
    store = VectorStore.objects.create(owner=alice)
    vs_file = add_file(store, "note.txt", "Capybaras are the largest rodents.")
    assert ingest_vector_store_file(vs_file.pk) == "completed"
    assert search(alice.pk, [store.id], "largest rodent")[0].filename == "note.txt"


def test_large_stores_prune_common_query_terms(alice, settings):
    docs = {f"filler{i}.txt": f"Common words appear here, filler number {i}." for i in range(6)}
    store = make_store(alice, {**docs, "zebra.txt": "A zebra has common stripes."})
    query = "zebra common words"
    unpruned = search(alice.pk, [store.id], query)
    assert unpruned[0].filename == "zebra.txt" and len(unpruned) == 7
    settings.FILE_SEARCH_LEXICAL_BUDGET = 2  # "store is large": keep terms while their df sum <= 2
    if connection.vendor == "postgresql":
        from assistants_app.tools.file_search import lexical

        with connection.cursor() as cur:
            cur.execute("ANALYZE assistants_app_chunk")  # PostgreSQL estimates df from ANALYZE statistics
        lexical._pg_stats_cache.clear()
    pruned = search(alice.pk, [store.id], query)
    # Only the rarest term ("zebra", in 1 chunk) was matched and scored.
    assert [r.filename for r in pruned] == ["zebra.txt"]


def test_a_small_store_is_never_pruned_however_large_the_table(alice, bob, settings):
    make_store(bob, {f"other{i}.txt": f"Common words are everywhere, number {i}." for i in range(6)})
    store = make_store(alice, {"zebra.txt": "A zebra has common stripes.", "words.txt": "Common words."})
    settings.FILE_SEARCH_LEXICAL_BUDGET = 3  # the table has 8 chunks, the store 2
    if connection.vendor == "postgresql":
        from assistants_app.tools.file_search import lexical

        with connection.cursor() as cur:
            cur.execute("ANALYZE assistants_app_chunk")
        lexical._pg_stats_cache.clear()
    found = search(alice.pk, [store.id], "zebra common words")
    # Every term matched: pruning to the rarest ("zebra") would have left words.txt out.
    assert {r.filename for r in found} == {"zebra.txt", "words.txt"}
