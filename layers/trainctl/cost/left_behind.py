"""What a terminated instance leaves behind, in words for its owner: each volume, whose it is, what it costs.

A volume kept past its instance goes on costing money every month; the notice names each one so that someone
decides about it. Prices come from the dated price file shipped with the code (the cost chain's last link):
a notice must never wait on, or fail for, the Price List API.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from trainctl.core import tags
from trainctl.core.protections import LeftBehind
from trainctl.core.resources import Volume
from trainctl.core.text import one_line
from trainctl.cost.prices.model import HOURS_PER_MONTH, Quote
from trainctl.cost.prices.price_file import PriceFile, load_price_file
from trainctl.cost.rules import volume_hourly


@cache
def shipped_prices() -> PriceFile:
    """The shipped file, read once per process (it only changes with the code)."""
    return load_price_file()


def monthly_usd(volume: Volume, prices: PriceFile) -> float | None:
    """USD a month for the volume's size and provisioned performance; None when the file has no price for it."""
    quotes = {key: Quote(price, "file") for key, price in prices.prices.items() if key.region == volume.region}
    hourly, _, _ = volume_hourly(volume, quotes)
    return None if hourly is None else hourly * HOURS_PER_MONTH


def left_behind_words(left: Sequence[LeftBehind], prices: PriceFile | None = None) -> str:
    """One phrase per volume: "vol-1 (owner bob, 100 GiB gp3, $8.00 a month: owned by someone else)"."""
    book = prices or shipped_prices()
    return ", ".join(_volume_words(kept, book) for kept in left)


def _volume_words(kept: LeftBehind, prices: PriceFile) -> str:
    volume = kept.volume
    if volume is None:
        return f"{one_line(kept.volume_id)} (owner unknown, cost unknown: {kept.why})"
    owner = volume.tags.get(tags.OWNER)
    whose = f"owner {one_line(owner, 64)}" if owner else "no owner tag"
    monthly = monthly_usd(volume, prices)
    cost = "unpriced" if monthly is None else f"${monthly:,.2f} a month"
    size = f"{volume.size_gib} GiB {one_line(volume.volume_type, 16)}"
    return f"{one_line(kept.volume_id)} ({whose}, {size}, {cost}: {kept.why})"
