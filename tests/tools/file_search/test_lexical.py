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
