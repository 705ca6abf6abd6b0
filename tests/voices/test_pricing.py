"""The price table: lookups, overrides, unpriced and local models."""

from __future__ import annotations

import logging

import pytest

from ai_orchestration.errors import ConfigError
from ai_orchestration.voices.pricing import DEFAULT_PRICES, Price, PriceTable, Quote


def test_cost_is_per_million_tokens() -> None:
    assert Price(2.5, 10.0).cost(1_000_000, 100_000) == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("model", "provider", "expected"),
    [
        ("gpt-4o-mini", "openai", Price(0.15, 0.60)),
        ("gpt-4o-mini-2024-07-18", "openai", Price(0.15, 0.60)),
        ("gpt-4o-mini", None, Price(0.15, 0.60)),
        ("claude-sonnet-4-20250514", "anthropic", Price(3.0, 15.0)),
        ("claude-3-5-haiku-latest", "anthropic", Price(0.80, 4.0)),
        ("models/gemini-2.0-flash-001", "gemini", Price(0.10, 0.40)),
    ],
)
def test_lookup_strips_dates_and_aliases(model: str, provider: str | None, expected: Price) -> None:
    assert PriceTable().lookup(model, provider=provider) == expected


def test_gpt_4o_is_not_mistaken_for_gpt_4o_mini() -> None:
    assert PriceTable().lookup("gpt-4o", provider="openai") == Price(2.5, 10.0)


def test_unknown_model_costs_zero_and_is_unpriced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    table = PriceTable()
    assert table.quote("mystery-model-1", 10, 10, provider="acme") == Quote(0.0, False)
    table.quote("mystery-model-1", 10, 10, provider="acme")
    assert caplog.text.count("acme:mystery-model-1") == 1  # warned once


def test_local_models_are_free_and_priced() -> None:
    assert PriceTable().quote("gemma", 1000, 1000, provider="llama-cpp", local=True) == Quote(
        0.0, True
    )


def test_overrides_win_and_defaults_stay() -> None:
    table = PriceTable(
        {"openai:gpt-4o-mini": (1.0, 2.0), "my-model": {"input_per_mtok": 3, "output_per_mtok": 4}}
    )
    assert table.lookup("gpt-4o-mini", provider="openai") == Price(1.0, 2.0)
    assert table.lookup("my-model") == Price(3.0, 4.0)
    assert table.lookup("gpt-4o", provider="openai") == DEFAULT_PRICES["openai:gpt-4o"]
    merged = PriceTable().merged({"gpt-4o": (9, 9)})
    assert merged.lookup("gpt-4o") == Price(9, 9)
    assert PriceTable(include_defaults=False).lookup("gpt-4o") is None


def test_usage_carries_cost_and_one_call() -> None:
    u = PriceTable({"m": (1.0, 1.0)}).usage("m", 500_000, 500_000)
    assert (u.input_tokens, u.output_tokens, u.cost_usd, u.calls) == (500_000, 500_000, 1.0, 1)


@pytest.mark.parametrize("bad", [(1.0,), "cheap", {"input_per_mtok": 1}, (-1.0, 1.0)])
def test_bad_prices_name_the_field(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"prices\.m"):
        PriceTable({"m": bad})  # type: ignore[dict-item]
