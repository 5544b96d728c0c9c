"""runs/rounds.py: the generated-token limit of a round."""

from __future__ import annotations

from assistants_app.runs.context import count_tokens, first_tokens
from assistants_app.runs.rounds import TokenBudget


def test_a_budget_passes_text_whole_until_the_limit() -> None:
    budget = TokenBudget(10)
    assert [budget.take(" word") for _ in range(9)] == [" word"] * 9
    assert not budget.exhausted
    assert budget.take(" word") == " word"
    assert budget.exhausted
    assert budget.take(" more") == ""


def test_a_delta_that_crosses_the_limit_is_cut_at_it() -> None:
    """Many tokens can come in one delta (all that arrived in one read of the upstream)."""
    budget = TokenBudget(10)
    assert budget.take(" a b") == " a b"
    kept = budget.take(" word" * 40)
    assert budget.exhausted
    assert count_tokens(" a b" + kept) == 10
    assert kept == " word" * 8


def test_a_cut_never_splits_a_character() -> None:
    text = "日本語のテキスト" * 5
    for n in range(1, 12):
        cut = first_tokens(text, n)
        assert text.startswith(cut) and count_tokens(cut) <= n
    assert first_tokens(text, 10_000) is text


def test_tool_arguments_count_whole() -> None:
    budget = TokenBudget(5)
    assert not budget.add('{"a"')
    assert budget.add(': "b c d e f g"}')
    assert budget.exhausted
