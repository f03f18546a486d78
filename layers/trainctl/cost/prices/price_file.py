"""The dated price file shipped with the code: the chain's last link before "unpriced"."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainctl.core.errors import SettingsError

if TYPE_CHECKING:
    pass

from trainctl.cost.prices.model import UNITS, Price, PriceKey, PriceNotFound

PRICE_FILE_FORMAT = 1


@dataclass(frozen=True)
class PriceFile:
    """Dated on-demand prices shipped in the layer: the last link before "unpriced"."""

    as_of: str
    source: str
    prices: Mapping[PriceKey, Price]

    def price(self, key: PriceKey) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise PriceNotFound(f"the price file of {self.as_of} has no price for {key}") from None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PriceFile:
        if raw.get("format") != PRICE_FILE_FORMAT:
            raise ValueError(f"format must be {PRICE_FILE_FORMAT}, got {raw.get('format')!r}")
        as_of = str(raw["as_of"])
        prices = {}
        for text, value in raw["prices"].items():
            key = PriceKey.parse(text)
            entry = value if isinstance(value, dict) else {"tiers": [[0, None, value]]}
            prices[key] = Price.from_json({"unit": UNITS[key.kind], "origin": "price-file", "as_of": as_of, **entry})
        return cls(as_of, str(raw.get("source", "")), prices)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PRICE_FILE_FORMAT,
            "as_of": self.as_of,
            "source": self.source,
            "prices": {
                str(key): price.tiers[0].usd if len(price.tiers) == 1 else {"tiers": price.to_json()["tiers"]}
                for key, price in sorted(self.prices.items())
            },
        }


def load_price_file(path: str | None = None) -> PriceFile:
    """The shipped file, or the one at `path`; an unreadable file is a SettingsError at start, not a $0 later."""
    where = path or "the price file shipped with trainctl"
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8")
        else:
            text = resources.files("trainctl.cost.prices").joinpath("prices.json").read_text(encoding="utf-8")
        return PriceFile.from_json(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SettingsError(f"TRAINCTL_PRICE_FILE: cannot read {where}: {type(exc).__name__}: {exc}") from exc


# ------------------------------------------------------------------------------------------------ price table
