"""One attribute-filter grammar (lib/filters.py) for the API and file search.

Before it, the API refused booleans inside "in"/"nin" while file search accepted them, and file
search matched Python's way (True == 1), not JSON's.
"""

from __future__ import annotations

import pytest
from django.test import Client

from assistants_app.lib import filters
from assistants_app.models import VectorStore
from assistants_app.services import keys
from assistants_app.tools.file_search.search import SearchError, search

BAD = [
    {"type": "in", "key": "flag", "value": [True, False]},
    {"type": "nin", "key": "n", "value": [1, True]},
    {"type": "or", "filters": [{"type": "eq", "key": "a", "value": {"x": 1}}]},
    {"type": "and", "filters": []},
    {"type": "between", "key": "a", "value": 1},
    {"type": "eq", "key": 3, "value": "x"},
    {"type": "eq", "key": "a", "value": "b", "extra": 1},
]


def _parse_error(f: object) -> tuple[str, str]:
    with pytest.raises(filters.FilterError) as exc:
        filters.parse(f)
    return exc.value.message, exc.value.param


@pytest.mark.django_db
@pytest.mark.parametrize("bad", BAD)
def test_the_api_and_file_search_refuse_alike(alice, bad) -> None:
    expected = _parse_error(bad)
    store = VectorStore.objects.create(owner=alice)
    with pytest.raises(SearchError) as direct:
        search(alice.pk, [store.id], "q", filters=bad)
    assert (direct.value.message, direct.value.param) == expected
    api = Client(HTTP_AUTHORIZATION=f"Bearer {keys.create_key(alice).raw}")
    response = api.post(
        f"/v1/vector_stores/{store.id}/search",
        {"query": "q", "filters": bad},
        content_type="application/json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["message"], error["param"]) == expected


def test_booleans_are_not_numbers() -> None:
    flag, one = {"flag": True}, {"flag": 1}
    assert filters.matches(flag, {"type": "eq", "key": "flag", "value": True})
    assert not filters.matches(flag, {"type": "eq", "key": "flag", "value": 1})
    assert not filters.matches(one, {"type": "eq", "key": "flag", "value": True})
    assert filters.matches(flag, {"type": "ne", "key": "flag", "value": 1})
    assert not filters.matches(flag, {"type": "in", "key": "flag", "value": [1, 2]})
    assert filters.matches(one, {"type": "in", "key": "flag", "value": [1.0, 2]})  # numbers are numbers
    assert not filters.matches(flag, {"type": "gte", "key": "flag", "value": 0})
    assert filters.matches({"year": 2024}, {"type": "gt", "key": "year", "value": 2023.5})
    assert not filters.matches({"year": "2024"}, {"type": "gt", "key": "year", "value": 2023})
    assert filters.matches({}, {"type": "nin", "key": "missing", "value": ["x"]})


def test_good_filters_parse_to_themselves() -> None:
    good = {
        "type": "and",
        "filters": [
            {"type": "in", "key": "team", "value": ["ops", 3, 2.5]},
            {"type": "or", "filters": [{"type": "eq", "key": "draft", "value": False}]},
        ],
    }
    assert filters.parse(good) == good
