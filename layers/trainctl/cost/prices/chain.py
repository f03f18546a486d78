"""Prices through a chain: memory, the DynamoDB price table, the Price List Query API, the shipped price file.

Where every link fails the price is missing, and the resource is reported unpriced: never priced at $0.
Spot prices come from DescribeSpotPriceHistory per zone; if that fails the on-demand price is an upper bound.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import error_code
from trainctl.aws.observability import logger
from trainctl.core.clock import Clock
from trainctl.core.errors import TrainctlError
from trainctl.cost.prices.price_file import PriceFile
from trainctl.cost.prices.price_list import PriceListApi
from trainctl.cost.prices.spot_history import SpotPriceHistory
from trainctl.cost.prices.table import PriceTable

if TYPE_CHECKING:
    pass

from trainctl.cost.prices.model import AmbiguousPrice, Link, Price, PriceKey, PriceNotFound, Quote, SpotKey


class PriceBook:
    """The chain. Kept warm across invocations of a Lambda; every lookup is counted by the link that answered."""

    def __init__(
        self,
        *,
        clock: Clock,
        price_file: PriceFile,
        table: PriceTable | None = None,
        api: PriceListApi | None = None,
        spot: SpotPriceHistory | None = None,
        list_price_ttl: timedelta = timedelta(days=7),
        spot_price_ttl: timedelta = timedelta(hours=1),
        api_retry_after: timedelta = timedelta(minutes=15),
    ) -> None:
        self._clock = clock
        self._file = price_file
        self._table = table
        self._api = api
        self._spot = spot
        self._list_ttl = list_price_ttl
        self._spot_ttl = spot_price_ttl
        self._api_retry_after = api_retry_after
        self._memory: dict[str, tuple[Price, datetime]] = {}
        self._api_down_until: datetime | None = None
        self._lock = threading.Lock()
        self.lookups: Counter[str] = Counter()

    @property
    def price_file(self) -> PriceFile:
        return self._file

    def _remember(self, key: str, price: Price, ttl: timedelta) -> None:
        with self._lock:
            self._memory[key] = (price, self._clock() + ttl)

    def _recall(self, key: str) -> Price | None:
        with self._lock:
            entry = self._memory.get(key)
        if entry and entry[1] > self._clock():
            return entry[0]
        return None

    def _count(self, link: Link) -> None:
        with self._lock:
            self.lookups[link] += 1

    def quotes(self, keys: Iterable[PriceKey]) -> dict[PriceKey, Quote]:
        """Resolve many keys: memory first, then one batched read of the table, then the API, then the file."""
        wanted = sorted(set(keys))
        quotes: dict[PriceKey, Quote] = {}
        missing = []
        for key in wanted:
            price = self._recall(str(key))
            if price is not None:
                self._count("memory")
                quotes[key] = Quote(price, "memory")
            else:
                missing.append(key)
        if missing and self._table is not None:
            try:
                stored = self._table.get_many([str(k) for k in missing])
            except TrainctlError as exc:
                logger.warning("price table unavailable", extra={"error": str(exc)})
                stored = {}
            for key in list(missing):
                if str(key) in stored:
                    price = stored[str(key)]
                    self._remember(str(key), price, self._list_ttl)
                    self._count("table")
                    quotes[key] = Quote(price, "table")
                    missing.remove(key)
        for key in missing:
            quotes[key] = self._from_api_or_file(key)
        return quotes

    def _from_api_or_file(self, key: PriceKey) -> Quote:
        problems = []
        now = self._clock()
        if self._api is not None and (self._api_down_until is None or now >= self._api_down_until):
            try:
                price = self._api.price(key)
            except (PriceNotFound, AmbiguousPrice) as exc:
                problems.append(str(exc))
            except (ClientError, BotoCoreError) as exc:
                # The link is down (no access, no endpoint, throttled past retries): skip it for a while.
                code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                problems.append(f"Price List API unavailable: {code}")
                self._api_down_until = now + self._api_retry_after
                logger.warning("Price List API unavailable", extra={"error": str(exc)})
            else:
                self._count("api")
                self._remember(str(key), price, self._list_ttl)
                if self._table is not None:
                    try:
                        self._table.put(str(key), price, now + self._list_ttl)
                    except TrainctlError as exc:
                        logger.warning("price table write failed", extra={"error": str(exc)})
                return Quote(price, "api")
        try:
            price = self._file.price(key)
        except PriceNotFound as exc:
            problems.append(str(exc))
        else:
            self._count("file")
            # File prices stay in memory only: the table holds what the API said, nothing older.
            self._remember(str(key), price, self._list_ttl)
            return Quote(price, "file", "; ".join(problems))
        self._count("unpriced")
        return Quote(None, "unpriced", "; ".join(problems))

    def spot_quotes(self, keys: Iterable[SpotKey], on_demand: Mapping[PriceKey, Quote]) -> dict[SpotKey, Quote]:
        """The spot price in effect now per zone and type, cached an hour; else on demand as an upper bound."""
        quotes = {}
        now = self._clock()
        for key in sorted(set(keys)):
            cached = self._recall(str(key))
            if cached is not None:
                self._count("memory")
                quotes[key] = Quote(cached, "memory")
                continue
            problem = "spot price history not configured"
            if self._spot is not None:
                fallback = on_demand.get(PriceKey("instance", key.region, key.instance_type))
                try:
                    price = self._spot.price(key, now)
                    _plausible_spot(price, fallback.price if fallback else None)
                except (PriceNotFound, ClientError, BotoCoreError) as exc:
                    problem = f"spot price history failed: {exc}"
                else:
                    self._count("spot-api")
                    self._remember(str(key), price, self._spot_ttl)
                    quotes[key] = Quote(price, "spot-api")
                    continue
            fallback = on_demand.get(PriceKey("instance", key.region, key.instance_type))
            if fallback is not None and fallback.price is not None:
                self._count("spot-fallback")
                bound = replace(fallback.price, origin="on-demand-upper-bound")
                quotes[key] = Quote(bound, "spot-fallback", problem, upper_bound=True)
            else:
                self._count("unpriced")
                quotes[key] = Quote(None, "unpriced", problem)
        return quotes


# Spot saves at most 90% and never costs more than on demand: outside that band a spot price is not believed.
SPOT_FLOOR_SHARE = 0.05


def _plausible_spot(spot: Price, on_demand: Price | None) -> None:
    if on_demand is None:
        return
    usd, ceiling = spot.cost(1), on_demand.cost(1)
    if not SPOT_FLOOR_SHARE * ceiling <= usd <= ceiling:
        raise PriceNotFound(
            f"spot price ${usd:g}/h is implausible against ${ceiling:g}/h on demand "
            f"(outside {SPOT_FLOOR_SHARE:.0%}..100%)"
        )
