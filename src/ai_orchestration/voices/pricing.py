"""Per-model token prices (USD per million tokens) and the cost of a call.

The built-in table holds a few list prices copied from the providers' published pricing pages;
prices change, so users override or extend it (``PriceTable(overrides)`` or the ``prices``
section of the config). A model nobody priced costs 0 and is reported as *unpriced* (logged once
per model); local models cost 0 and count as priced.

>>> table = PriceTable({"my-model": (1.0, 2.0)})
>>> table.quote("my-model", 1_000_000, 500_000)
Quote(cost_usd=2.0, priced=True)
>>> table.quote("gpt-4o-mini-2024-07-18", 1_000_000, 0).cost_usd
0.15
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ai_orchestration.errors import ConfigError
from ai_orchestration.voices._types import Usage

__all__ = ["DEFAULT_PRICES", "DEFAULT_TABLE", "Price", "PriceTable", "Quote"]

_log = logging.getLogger("ai_orchestration.voices")


@dataclass(frozen=True, slots=True)
class Price:
    """List price in USD per one million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True, slots=True)
class Quote:
    """The cost of one call, and whether the model had a price at all."""

    cost_usd: float
    priced: bool


# Standard (non-batch, no caching) text prices. Keys are model ids without date suffixes.
DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        # OpenAI, platform.openai.com/docs/pricing (standard tier).
        "openai:gpt-4o": Price(2.50, 10.00),
        "openai:gpt-4o-mini": Price(0.15, 0.60),
        "openai:gpt-4.1": Price(2.00, 8.00),
        "openai:gpt-4.1-mini": Price(0.40, 1.60),
        "openai:gpt-4.1-nano": Price(0.10, 0.40),
        # Anthropic, docs.anthropic.com/en/docs/about-claude/pricing ("Base Input Tokens" and
        # "Output Tokens"; Sonnet 4 at the <= 200K-input-token rate).
        "anthropic:claude-opus-4-1": Price(15.00, 75.00),
        "anthropic:claude-opus-4": Price(15.00, 75.00),
        "anthropic:claude-sonnet-4": Price(3.00, 15.00),
        "anthropic:claude-3-7-sonnet": Price(3.00, 15.00),
        "anthropic:claude-3-5-haiku": Price(0.80, 4.00),
        "anthropic:claude-3-haiku": Price(0.25, 1.25),
        # Google, ai.google.dev/gemini-api/docs/pricing (paid tier, text input/output).
        "gemini:gemini-2.0-flash": Price(0.10, 0.40),
    }
)

_SUFFIXES = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{3}|-latest)$")
PriceLike = Price | tuple[float, float] | Mapping[str, Any]


def _as_price(key: str, value: PriceLike) -> Price:
    if isinstance(value, Price):
        return value
    try:
        if isinstance(value, Mapping):
            inp, out = value["input_per_mtok"], value["output_per_mtok"]
        else:
            inp, out = value
        price = Price(float(inp), float(out))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            "a price is (input_per_mtok, output_per_mtok) in USD per million tokens, "
            f"got {value!r}",
            field=f"prices.{key}",
        ) from None
    if price.input_per_mtok < 0 or price.output_per_mtok < 0:
        raise ConfigError(f"prices cannot be negative, got {value!r}", field=f"prices.{key}")
    return price


def _candidates(model: str, provider: str | None) -> list[str]:
    bare = model.removeprefix("models/")  # Gemini answers "models/gemini-2.0-flash"
    names = [bare]
    stripped = bare
    while (shorter := _SUFFIXES.sub("", stripped)) != stripped:
        stripped = shorter
        names.append(stripped)
    if provider:
        return [f"{provider}:{n}" for n in names] + names
    return names


class PriceTable:
    """Model prices: the built-in table (unless ``include_defaults=False``) plus overrides.

    Keys are ``model`` or ``provider:model``; the provider-qualified key wins. Dated or
    ``-latest`` model ids fall back to their base id (``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``).
    """

    __slots__ = ("_prices",)

    def __init__(
        self, prices: Mapping[str, PriceLike] | None = None, *, include_defaults: bool = True
    ) -> None:
        merged: dict[str, Price] = dict(DEFAULT_PRICES) if include_defaults else {}
        for key, value in (prices or {}).items():
            merged[key] = _as_price(key, value)
        self._prices = merged

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models)"

    def __contains__(self, model: str) -> bool:
        return self.lookup(model) is not None

    def merged(self, overrides: Mapping[str, PriceLike]) -> PriceTable:
        """A new table with ``overrides`` on top of this one."""
        out = PriceTable(include_defaults=False)
        out._prices = {**self._prices, **{k: _as_price(k, v) for k, v in overrides.items()}}
        return out

    def lookup(self, model: str, *, provider: str | None = None) -> Price | None:
        for key in _candidates(model, provider):
            price = self._prices.get(key)
            if price is not None:
                return price
        if provider is None:  # a bare model id may still match one provider's entry
            bare = _candidates(model, None)
            for key, price in self._prices.items():
                if key.partition(":")[2] in bare:
                    return price
        return None

    def quote(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        *,
        provider: str | None = None,
        local: bool = False,
    ) -> Quote:
        """The cost of a call; ``local`` models (a server on this machine) are free, whatever
        their name. Unknown models cost 0, unpriced."""
        if local:
            return Quote(0.0, True)
        price = self.lookup(model, provider=provider)
        if price is None:
            _warn_unpriced(provider, model)
            return Quote(0.0, False)
        return Quote(price.cost(input_tokens, output_tokens), True)

    def usage(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        *,
        provider: str | None = None,
        local: bool = False,
    ) -> Usage:
        """A one-call ``Usage`` with the cost filled in."""
        quote = self.quote(model, input_tokens, output_tokens, provider=provider, local=local)
        return Usage(input_tokens, output_tokens, quote.cost_usd, 1)


_warned: set[str] = set()


def _warn_unpriced(provider: str | None, model: str) -> None:
    key = f"{provider}:{model}" if provider else model
    if key not in _warned:
        _warned.add(key)
        _log.warning("no price known for model %r; its calls count as $0 (unpriced)", key)


DEFAULT_TABLE = PriceTable()
