"""The dated price file shipped with the code: the chain's last link before "unpriced".

Besides the prices it says where each came from and when (its blocks), and what it knows is not there:
types AWS does not sell on demand in a region, and prices no published source was found for. A key in
neither the prices nor those lists is one the file simply does not cover.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from trainctl.core.errors import SettingsError

if TYPE_CHECKING:
    pass

from trainctl.cost.prices.model import UNITS, Price, PriceKey, PriceNotFound

PRICE_FILE_FORMAT = 1
# The file is stale, and a test fails, once it is older than this.
MAX_AGE_DAYS = 180

GapKind = Literal["not-sold-on-demand", "no-price-found"]
_GAP_FIELDS: dict[GapKind, str] = {"not-sold-on-demand": "not_sold_on_demand", "no-price-found": "no_price_found"}


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class PriceBlock(NamedTuple):
    """Prices that came from one source on one date."""

    id: str
    source: str
    date: str  # ISO date the source published, generated or was checked against AWS's prices
    keys: tuple[PriceKey, ...]
    url: str = ""
    note: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PriceBlock:
        date.fromisoformat(str(raw["date"]))
        return cls(
            str(raw["id"]),
            str(raw["source"]),
            str(raw["date"]),
            tuple(PriceKey.parse(k) for k in raw["keys"]),
            str(raw.get("url", "")),
            str(raw.get("note", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            **({"url": self.url} if self.url else {}),
            "date": self.date,
            **({"note": self.note} if self.note else {}),
            "keys": [str(k) for k in self.keys],
        }


class PriceGap(NamedTuple):
    """Keys the file knowingly has no price for, and why: not sold on demand there, or no published price found."""

    kind: GapKind
    why: str
    source: str
    date: str
    keys: tuple[PriceKey, ...]

    @classmethod
    def from_json(cls, kind: GapKind, raw: Mapping[str, Any]) -> PriceGap:
        date.fromisoformat(str(raw["date"]))
        return cls(
            kind, str(raw["why"]), str(raw["source"]), str(raw["date"]), tuple(PriceKey.parse(k) for k in raw["keys"])
        )

    def to_json(self) -> dict[str, Any]:
        return {"why": self.why, "source": self.source, "date": self.date, "keys": [str(k) for k in self.keys]}


@dataclass(frozen=True)
class PriceFile:
    """Dated on-demand prices shipped in the layer: the last link before "unpriced"."""

    as_of: str
    source: str
    prices: Mapping[PriceKey, Price]
    blocks: tuple[PriceBlock, ...] = ()
    gaps: tuple[PriceGap, ...] = ()
    regions: tuple[str, ...] = field(default=())

    def price(self, key: PriceKey) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            gap = self.gap(key)
            why = f": {gap.why}" if gap else ""
            raise PriceNotFound(f"the price file of {self.as_of} has no price for {key}{why}") from None

    def gap(self, key: PriceKey) -> PriceGap | None:
        return next((g for g in self.gaps if key in g.keys), None)

    def block(self, key: PriceKey) -> PriceBlock | None:
        return next((b for b in self.blocks if key in b.keys), None)

    def age_days(self, today: date) -> int:
        """Whole days from the file's as_of to `today`."""
        return (today - date.fromisoformat(self.as_of[:10])).days

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
        gaps = tuple(
            PriceGap.from_json(kind, group) for kind, name in _GAP_FIELDS.items() for group in raw.get(name, [])
        )
        return cls(
            as_of,
            str(raw.get("source", "")),
            prices,
            tuple(PriceBlock.from_json(b) for b in raw.get("blocks", [])),
            gaps,
            tuple(str(r) for r in raw.get("regions", [])),
        )

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "format": PRICE_FILE_FORMAT,
            "as_of": self.as_of,
            "source": self.source,
        }
        if self.regions:
            document["regions"] = list(self.regions)
        if self.blocks:
            document["blocks"] = [b.to_json() for b in self.blocks]
        for kind, name in _GAP_FIELDS.items():
            groups = [g.to_json() for g in self.gaps if g.kind == kind]
            if groups:
                document[name] = groups
        document["prices"] = {
            str(key): price.tiers[0].usd if len(price.tiers) == 1 else {"tiers": price.to_json()["tiers"]}
            for key, price in sorted(self.prices.items())
        }
        return document


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
