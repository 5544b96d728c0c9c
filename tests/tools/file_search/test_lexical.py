"""File search's lexical index is one small class per database (tools/file_search/lexical.py).

Before it, index.py and search.py branched on `conn.vendor` in five places. It uses the database,
so phase 2 of scripts/test.sh runs it on PostgreSQL too (where for_alias picks PostgresFullText).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.db import connection

from assistants_app.models import Chunk
from assistants_app.tools.file_search import lexical
from assistants_app.tools.file_search.lexical import PostgresFullText, SqliteFts5, for_alias
from tests.tools.file_search.test_retrieval import DOCS, make_store

pytestmark = pytest.mark.django_db
FILE_SEARCH = Path(__file__).resolve().parent.parent / "assistants_app" / "tools" / "file_search"


def test_the_index_is_the_configured_database_s() -> None:
    index = for_alias()
    assert type(index) is {"sqlite": SqliteFts5, "postgresql": PostgresFullText}[connection.vendor]
    assert set(lexical.INDEXES) == {"sqlite", "postgresql"}


def test_candidates_are_ranked_and_scoped_to_owner_and_store(alice, bob) -> None:
    mine, other = make_store(alice, DOCS), make_store(alice, {"x.txt": "Worker bees dance."})
    theirs = make_store(bob, {"bees.md": "Worker bees perform a waggle dance."})
    index = for_alias()
    terms = lexical.query_terms(["waggle dance of worker bees"])
    found = index.candidates(alice.pk, [mine.id], terms, 10)
    assert found and [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    where = set(Chunk.objects.filter(id__in=[c for c, _ in found]).values_list("vector_store_id", "owner_id"))
    assert where == {(mine.id, alice.pk)}
    assert index.candidates(bob.pk, [mine.id], terms, 10) == []  # another owner's store adds nothing
    both = {c for c, _ in index.candidates(alice.pk, [mine.id, other.id, theirs.id], terms, 10)}
    stores = set(Chunk.objects.filter(id__in=both).values_list("vector_store_id", flat=True))
    assert stores == {mine.id, other.id}
    assert index.candidates(alice.pk, [mine.id], [], 10) == []
    assert index.candidates(alice.pk, [mine.id], terms, 10, vs_file_ids=[]) == []


def test_no_module_branches_on_the_database_vendor() -> None:
    def branches(source: str) -> list[int]:
        return [
            node.lineno
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Compare)
            and any(isinstance(n, ast.Attribute) and n.attr == "vendor" for n in ast.walk(node))
        ]

    found = {p.name: lines for p in FILE_SEARCH.glob("*.py") if (lines := branches(p.read_text()))}
    assert found == {}
    assert branches('if conn.vendor == "sqlite": pass\n')  # positive control


TWO_TERMS = {
    "abg.txt": "Alpha beta gamma.",  # three terms: a naive (a AND b) OR ... match would count it twice
    "ab.txt": "Alpha beta.",
    "ag.txt": "Alpha gamma.",
    "b.txt": "Beta alone, beta again.",
    "d.txt": "Delta.",
}


def test_two_or_more_matches_chunks_with_two_terms_scored_as_by_all(alice) -> None:
    store = make_store(alice, TWO_TERMS)
    index = for_alias()
    terms = ["alpha", "beta", "gamma"]
    names = dict(Chunk.objects.filter(vector_store=store).values_list("id", "file__filename"))
    with connection.cursor() as cur:
        every = dict(index._rank(cur, terms, alice.pk, [store.id], 10, None, False))
        two = dict(index._rank(cur, terms, alice.pk, [store.id], 10, None, True))
    assert {names[c] for c in every} == {"abg.txt", "ab.txt", "ag.txt", "b.txt"}  # positive control
    assert {names[c] for c in two} == {"abg.txt", "ab.txt", "ag.txt"}
    assert all(two[c] == pytest.approx(every[c], rel=1e-6) for c in two)


def test_large_stores_rank_two_term_chunks_when_there_are_enough(alice, settings, monkeypatch) -> None:
    store = make_store(alice, TWO_TERMS)
    index = for_alias()
    # Keep every term: this is about the match, not which terms pruning keeps.
    monkeypatch.setattr(type(index), "_document_frequencies", lambda self, cursor, terms: None)
    names = dict(Chunk.objects.filter(vector_store=store).values_list("id", "file__filename"))
    terms = ["alpha", "beta", "gamma"]

    def found(limit: int) -> set[str]:
        return {names[c] for c, _ in index.candidates(alice.pk, [store.id], terms, limit)}

    settings.FILE_SEARCH_LEXICAL_BUDGET = 4  # 5 chunks: a large store
    assert found(3) == {"abg.txt", "ab.txt", "ag.txt"}
    assert found(4) == {"abg.txt", "ab.txt", "ag.txt", "b.txt"}  # fewer than 4 two-term chunks: any term
    settings.FILE_SEARCH_LEXICAL_BUDGET = 5  # a small store: any term, best first
    assert len(found(3)) == 3 and found(4) == {"abg.txt", "ab.txt", "ag.txt", "b.txt"}


def test_another_owner_s_store_yields_nothing_even_when_the_index_matches_it(alice, bob) -> None:
    theirs = make_store(bob, {"bees.md": "Worker bees perform a waggle dance."})
    terms = lexical.query_terms(["waggle dance"])
    assert for_alias().candidates(bob.pk, [theirs.id], terms, 10)  # positive control
    assert for_alias().candidates(alice.pk, [theirs.id], terms, 10) == []
