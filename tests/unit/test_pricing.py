"""The price chain: Price List parsing, the ambiguity check, each link failing in turn, spot against on demand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from tests import price_list
from trainctl.core.clock import fixed_clock
from trainctl.core.errors import AwsAccessError, SettingsError
from trainctl.cost.prices.chain import PriceBook
from trainctl.cost.prices.model import AmbiguousPrice, Price, PriceKey, PriceNotFound, SpotKey
from trainctl.cost.prices.price_file import PriceFile, load_price_file
from trainctl.cost.prices.price_list import PriceListApi, RateLimiter, parse_price_list, select_price
from trainctl.cost.prices.spot_history import SpotPriceHistory
from trainctl.cost.prices.table import InMemoryPriceTable

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
G5 = PriceKey("instance", "us-east-1", "g5.xlarge")


def pricing_client() -> Any:
    return boto3.client("pricing", region_name="us-east-1")


def filters_of(params: dict[str, Any]) -> dict[str, str]:
    return {f["Field"]: f["Value"] for f in params["Filters"]}


class NoWait(RateLimiter):
    def __init__(self) -> None:
        super().__init__(5.0, monotonic=lambda: 0.0, sleep=lambda _: None)


# --------------------------------------------------------------------------------------- parsing and selection


def test_instance_price_is_parsed_from_the_recorded_price_list() -> None:
    products = parse_price_list(price_list.records_for("instance", "p5.48xlarge"))
    tiers = select_price(PriceKey("instance", "us-east-1", "p5.48xlarge"), products)
    assert [t.usd for t in tiers] == [55.04]


def test_snapshot_price_skips_the_archive_tier() -> None:
    tiers = select_price(PriceKey("snapshot", "us-east-1", "standard"), parse_price_list(price_list.snapshots()))
    assert [t.usd for t in tiers] == [0.05]


def test_io2_iops_are_priced_in_three_tiers() -> None:
    tiers = select_price(PriceKey("iops", "us-east-1", "io2"), parse_price_list(price_list.records_for("iops", "io2")))
    price = Price(tiers, "iops-month", "price-list-api", "2026-11-28")
    # 40,000 IOPS: 32,000 at the first tier, 8,000 at the second.
    assert price.cost(40_000) == pytest.approx(32_000 * 0.065 + 8_000 * 0.0455)
    assert price.cost(70_000) == pytest.approx(32_000 * 0.065 + 32_000 * 0.0455 + 6_000 * 0.03185)


def test_two_distinct_prices_for_one_key_are_refused() -> None:
    records = [price_list.instance("g5.xlarge", 1.006), price_list.instance("g5.xlarge", 1.2, sku="OTHERSKU")]
    with pytest.raises(AmbiguousPrice, match="2 distinct prices"):
        select_price(G5, parse_price_list(records))


def test_the_same_price_twice_is_not_ambiguous() -> None:
    records = [price_list.instance("g5.xlarge", 1.006), price_list.instance("g5.xlarge", 1.006, sku="OTHERSKU")]
    assert [t.usd for t in select_price(G5, parse_price_list(records))] == [1.006]


def test_no_matching_product_is_not_found_and_never_zero() -> None:
    with pytest.raises(PriceNotFound):
        select_price(G5, parse_price_list([]))
    zero = price_list.instance("g5.xlarge", 0.0)
    with pytest.raises(PriceNotFound):
        select_price(G5, parse_price_list([zero]))


# ------------------------------------------------------------------------------------------ the API, stubbed


def test_price_list_api_sends_the_documented_filters_and_follows_pages() -> None:
    client = pricing_client()
    stubber = Stubber(client)
    first = {"PriceList": [price_list.instance("g5.xlarge", 1.006)], "NextToken": "page-2", "FormatVersion": "aws_v1"}
    stubber.add_response(
        "get_products",
        first,
        {"ServiceCode": "AmazonEC2", "Filters": ANY, "FormatVersion": "aws_v1", "MaxResults": 100},
    )
    stubber.add_response(
        "get_products",
        {"PriceList": [], "FormatVersion": "aws_v1"},
        {
            "ServiceCode": "AmazonEC2",
            "Filters": ANY,
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
            "NextToken": "page-2",
        },
    )
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.pricing.GetProducts", lambda params, **_: sent.append(dict(params))
    )
    with stubber:
        price = PriceListApi(client, limiter=NoWait(), clock=fixed_clock(AT)).price(G5)
    stubber.assert_no_pending_responses()
    assert price.cost(1) == 1.006 and price.origin == "price-list-api"
    assert filters_of(sent[0]) == {
        "regionCode": "us-east-1",
        "instanceType": "g5.xlarge",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "marketoption": "OnDemand",
        "licenseModel": "No License required",
    }
    assert all(f["Type"] == "TERM_MATCH" for f in sent[0]["Filters"])


def test_rate_limiter_keeps_to_five_requests_a_second() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(5.0, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(11):
        limiter.acquire()
    # Eleven requests need at least two seconds at five a second.
    assert now[0] == pytest.approx(2.0)
    assert len(slept) == 10


# -------------------------------------------------------------------------------------------------- the chain


class CountingApi:
    def __init__(self, prices: dict[PriceKey, float] | None = None, error: Exception | None = None) -> None:
        self.prices = prices or {}
        self.error = error
        self.calls: list[PriceKey] = []

    def price(self, key: PriceKey) -> Price:
        self.calls.append(key)
        if self.error:
            raise self.error
        if key not in self.prices:
            raise PriceNotFound(str(key))
        return Price.flat(self.prices[key], "hour", "price-list-api", "2026-11-28T12:00:00Z")


class FailingTable(InMemoryPriceTable):
    def get_many(self, keys: list[str]) -> dict[str, Price]:
        raise AwsAccessError("BatchGetItem", "ResourceNotFoundException", "no table")


def file_with(prices: dict[PriceKey, float]) -> PriceFile:
    return PriceFile(
        "2026-11-01", "test", {k: Price.flat(v, "hour", "price-file", "2026-11-01") for k, v in prices.items()}
    )


def book(api: CountingApi | None, table: InMemoryPriceTable | None, file_prices: dict[PriceKey, float]) -> PriceBook:
    return PriceBook(clock=fixed_clock(AT), price_file=file_with(file_prices), table=table, api=api)  # type: ignore[arg-type]


def test_api_price_is_stored_in_the_table_and_memory_answers_next() -> None:
    api, table = CountingApi({G5: 1.006}), InMemoryPriceTable()
    chain = book(api, table, {})
    assert chain.quotes([G5])[G5].link == "api"
    price, expires = table.items[str(G5)]
    assert price.cost(1) == 1.006 and expires == AT + timedelta(days=7)
    again = chain.quotes([G5])[G5]
    assert again.link == "memory" and api.calls == [G5]
    assert dict(chain.lookups) == {"api": 1, "memory": 1}


def test_table_answers_before_the_api() -> None:
    api, table = CountingApi({G5: 9.99}), InMemoryPriceTable()
    table.put(str(G5), Price.flat(1.006, "hour", "price-list-api", "2026-11-27"), AT + timedelta(days=1))
    quote = book(api, table, {}).quotes([G5])[G5]
    assert quote.link == "table" and quote.price is not None and quote.price.cost(1) == 1.006
    assert api.calls == []


def test_table_down_falls_through_to_the_api() -> None:
    api = CountingApi({G5: 1.006})
    quote = book(api, FailingTable(), {}).quotes([G5])[G5]
    assert quote.link == "api" and api.calls == [G5]


def test_api_down_falls_to_the_file_and_is_skipped_for_a_while() -> None:
    other = PriceKey("instance", "us-east-1", "t3.micro")
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetProducts")
    api = CountingApi(error=denied)
    chain = book(api, None, {G5: 1.006, other: 0.0104})
    quotes = chain.quotes([G5, other])
    assert {q.link for q in quotes.values()} == {"file"}
    assert quotes[G5].price is not None and quotes[G5].price.origin == "price-file"
    assert "AccessDeniedException" in quotes[G5].problem or "AccessDeniedException" in quotes[other].problem
    assert len(api.calls) == 1  # the second key did not knock on a door known to be shut


def test_ambiguous_api_answer_falls_to_the_file() -> None:
    api = CountingApi(error=AmbiguousPrice("2 distinct prices"))
    quote = book(api, None, {G5: 1.006}).quotes([G5])[G5]
    assert quote.link == "file" and "2 distinct prices" in quote.problem


def test_every_link_failing_leaves_the_key_unpriced_not_zero() -> None:
    api = CountingApi()  # knows nothing
    quote = book(api, FailingTable(), {}).quotes([G5])[G5]
    assert quote.price is None and quote.link == "unpriced"
    assert "g5.xlarge" in quote.problem


# ------------------------------------------------------------------------------------------------------- spot

SPOT = SpotKey("us-east-1", "us-east-1a", "g5.xlarge")


def spot_history(response: dict[str, Any] | None, error: str | None = None) -> tuple[SpotPriceHistory, Stubber]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    stubber = Stubber(ec2)
    if error:
        stubber.add_client_error("describe_spot_price_history", service_error_code=error)
    else:
        stubber.add_response("describe_spot_price_history", response or {})
    return SpotPriceHistory(lambda _: ec2), stubber


def on_demand_quotes() -> dict[PriceKey, Any]:
    chain = book(CountingApi({G5: 1.006}), None, {})
    return chain.quotes([G5])


def test_spot_price_comes_from_the_instances_zone_and_is_cached_an_hour() -> None:
    history = {
        "SpotPriceHistory": [
            {
                "AvailabilityZone": "us-east-1a",
                "InstanceType": "g5.xlarge",
                "SpotPrice": "0.3921",
                "Timestamp": AT - timedelta(hours=3),
                "ProductDescription": "Linux/UNIX",
            },
            {
                "AvailabilityZone": "us-east-1a",
                "InstanceType": "g5.xlarge",
                "SpotPrice": "0.4102",
                "Timestamp": AT - timedelta(minutes=20),
                "ProductDescription": "Linux/UNIX",
            },
            {
                "AvailabilityZone": "us-east-1b",
                "InstanceType": "g5.xlarge",
                "SpotPrice": "0.9000",
                "Timestamp": AT,
                "ProductDescription": "Linux/UNIX",
            },
        ]
    }
    source, stubber = spot_history(history)
    now = [AT]
    chain = PriceBook(clock=lambda: now[0], price_file=file_with({}), spot=source)
    with stubber:
        quote = chain.spot_quotes([SPOT], on_demand_quotes())[SPOT]
        assert quote.price is not None and quote.price.cost(1) == pytest.approx(0.4102)
        assert quote.price.origin == "spot-price-history" and not quote.upper_bound
        now[0] = AT + timedelta(minutes=59)
        assert chain.spot_quotes([SPOT], on_demand_quotes())[SPOT].link == "memory"
    stubber.assert_no_pending_responses()


def test_spot_failure_uses_on_demand_as_a_flagged_upper_bound() -> None:
    source, stubber = spot_history(None, error="UnauthorizedOperation")
    chain = PriceBook(clock=fixed_clock(AT), price_file=file_with({}), spot=source)
    with stubber:
        quote = chain.spot_quotes([SPOT], on_demand_quotes())[SPOT]
    assert quote.upper_bound and quote.price is not None
    assert quote.price.cost(1) == 1.006 and quote.price.origin == "on-demand-upper-bound"
    assert "UnauthorizedOperation" in quote.problem


def test_implausible_spot_price_is_not_believed() -> None:
    # moto answers $0.00001: below any real spot discount.
    history = {
        "SpotPriceHistory": [
            {"AvailabilityZone": "us-east-1a", "InstanceType": "g5.xlarge", "SpotPrice": "0.00001", "Timestamp": AT}
        ]
    }
    source, stubber = spot_history(history)
    chain = PriceBook(clock=fixed_clock(AT), price_file=file_with({}), spot=source)
    with stubber:
        quote = chain.spot_quotes([SPOT], on_demand_quotes())[SPOT]
    assert quote.upper_bound and "implausible" in quote.problem


# -------------------------------------------------------------------------------------------------- the file


def test_the_shipped_price_file_loads_and_prices_common_training_types() -> None:
    shipped = load_price_file()
    assert shipped.as_of and "Price List" in shipped.source
    assert shipped.price(PriceKey("instance", "us-east-1", "p5.48xlarge")).cost(1) == 55.04
    assert shipped.price(PriceKey("iops", "us-east-1", "io2")).cost(64_000) == pytest.approx(
        32_000 * 0.065 + 32_000 * 0.0455
    )


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"format": 99, "as_of": "2026-11-01", "prices": {}}),
        json.dumps({"format": 1, "as_of": "x", "prices": {"bogus|us-east-1|x": 1}}),
        json.dumps({"format": 1, "as_of": "x", "prices": {"instance|us-east-1|x": -1}}),
    ],
)
def test_an_unreadable_price_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError, match=r"TRAINCTL_PRICE_FILE: cannot read .*prices\.json"):
        load_price_file(str(path))


def test_a_missing_price_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="TRAINCTL_PRICE_FILE"):
        load_price_file(str(tmp_path / "absent.json"))


def test_price_file_round_trips() -> None:
    shipped = load_price_file()
    assert PriceFile.from_json(shipped.to_json()) == shipped


def test_price_file_generator_builds_a_loadable_file_and_leaves_out_what_it_cannot_price(tmp_path: Path) -> None:
    from trainctl.cli.price_file import build_price_file

    keys = [
        PriceKey("instance", "us-east-1", "g5.xlarge"),
        PriceKey("instance", "us-east-1", "zz9.mega"),
        PriceKey("iops", "us-east-1", "io2"),
        PriceKey("snapshot", "us-east-1", "standard"),
    ]
    client = pricing_client()
    stubber = Stubber(client)
    for key in keys:
        stubber.add_response(
            "get_products",
            {"PriceList": price_list.records_for(key.kind, key.name), "FormatVersion": "aws_v1"},
            {"ServiceCode": "AmazonEC2", "Filters": ANY, "FormatVersion": "aws_v1", "MaxResults": 100},
        )
    with stubber:
        generated, missing = build_price_file(
            PriceListApi(client, limiter=NoWait(), clock=fixed_clock(AT)), keys, "2026-11-28"
        )
    assert len(missing) == 1 and "zz9.mega" in missing[0]
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(generated.to_json()), encoding="utf-8")
    loaded = load_price_file(str(path))
    assert loaded.as_of == "2026-11-28"
    assert loaded.price(keys[0]).cost(1) == 1.006 and loaded.price(keys[0]).origin == "price-file"
    assert loaded.price(keys[2]).cost(40_000) == pytest.approx(32_000 * 0.065 + 8_000 * 0.0455)
    assert loaded.price(keys[3]).cost(100) == pytest.approx(5.0)
    # The generated file says where its prices came from and when, and what it could not price.
    assert [(b.id, b.date, set(b.keys)) for b in loaded.blocks] == [
        ("price-list-api-us-east-1", "2026-11-28", {keys[0], keys[2], keys[3]})
    ]
    gap = loaded.gap(keys[1])
    assert gap is not None and gap.kind == "not-sold-on-demand" and gap.date == "2026-11-28"
    assert loaded.regions == ("us-east-1",)
