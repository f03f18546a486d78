"""One client factory: the standard AWS environment (profile, region, AWS_ENDPOINT_URL) and adaptive retries."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from trainctl.core.errors import AwsAccessError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient

# Adaptive mode adds client-side rate limiting to standard retries: EC2 throttles per account and action.
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 10},
    max_pool_connections=32,
    # moto's server cannot read gzip request bodies; trainctl sends no large payloads anyway.
    disable_request_compression=True,
)

# Operation-name prefixes that only read; everything else counts as a write.
READ_PREFIXES = ("Describe", "List", "Get", "Query", "Scan", "BatchGet", "Search", "Lookup")


def parse_timestamp(value: Any) -> datetime:
    """botocore's response timestamps, ISO 8601 by the standard library first.

    botocore's own parser goes through dateutil, which spends half a millisecond on each timestamp: two thirds
    of the time to read 50,000 resources. EC2 sends ISO 8601 in UTC ("2026-11-01T09:30:00.000Z"), which
    datetime.fromisoformat reads 50 times faster; anything else (epoch numbers, RFC 822) goes to botocore.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    default: datetime = botocore_parse_timestamp(value)
    return default


def is_read(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES)


class ApiCalls:
    """Counts every API call made through a factory, by service and operation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: Counter[str] = Counter()

    def record(self, model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}:{model.name}"
        with self._lock:
            self.by_operation[name] += 1

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def writes(self) -> dict[str, int]:
        return {op: n for op, n in self.by_operation.items() if not is_read(op.split(":", 1)[1])}


class Credentials(NamedTuple):
    """Temporary credentials, such as STS AssumeRole returns for a spoke account's role."""

    access_key_id: str
    secret_access_key: str
    session_token: str

    def __repr__(self) -> str:
        # A log line or a traceback's locals must never carry the secret or the token.
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key=..., session_token=...)"


class ClientFactory:
    """Builds and caches one client per (service, region); clients are shared by threads, building is not."""

    def __init__(
        self, region: str | None = None, *, config: Config = RETRY_CONFIG, credentials: Credentials | None = None
    ) -> None:
        # A botocore session, not boto3's: clients are all trainctl needs, and importing boto3 (its resources
        # and s3transfer) would add about 80 ms to every handler's cold start. Credentials, profile, region and
        # AWS_ENDPOINT_URL come from the environment exactly as they would through boto3.
        self._session = botocore.session.Session()
        if region:
            self._session.set_config_variable("region", region)
        if credentials is not None:
            # Every client then acts in the account these credentials belong to (a spoke's assumed role).
            self._session.set_credentials(*credentials)
        self._config = config
        self._clients: dict[tuple[str, str | None, str], Any] = {}
        self._lock = threading.Lock()
        self.calls = ApiCalls()
        self._events = self._session.get_component("event_emitter")
        self._events.register("before-call", self.calls.record)
        # Clients built from now on read timestamps with parse_timestamp.
        self._session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)

    def register(self, event_name: str, handler: Any, *, first: bool = False) -> None:
        """Hook every client, existing and future: clients copy the session's hooks only when built.

        `first` puts the hook ahead of the others: for before-send the first answer is the one sent.
        """
        with self._lock:
            targets = [self._events, *(client.meta.events for client in self._clients.values())]
            for events in targets:
                (events.register_first if first else events.register)(event_name, handler)

    @property
    def default_region(self) -> str | None:
        region: str | None = self._session.get_config_variable("region")
        return region

    def client(self, service: str, region: str | None = None, *, lane: str = "") -> Any:
        """`lane` gives a caller a client of its own: adaptive retries slow a whole client once any of its calls
        is throttled, and EC2 throttles each API apart, so reads must not wait behind a throttled delete."""
        key = (service, region, lane)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._session.create_client(
                    service,
                    region_name=region or self.default_region,
                    config=self._config,
                )
            return self._clients[key]

    def ec2(self, region: str, *, lane: str = "") -> EC2Client:
        client: EC2Client = self.client("ec2", region, lane=lane)
        return client

    def ssm(self, region: str) -> SSMClient:
        client: SSMClient = self.client("ssm", region)
        return client

    def cloudwatch(self, region: str) -> CloudWatchClient:
        client: CloudWatchClient = self.client("cloudwatch", region)
        return client

    def dynamodb(self, region: str | None = None) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb", region)
        return client

    def sns(self, region: str | None = None) -> SNSClient:
        client: SNSClient = self.client("sns", region)
        return client

    def cloudformation(self, region: str | None = None) -> CloudFormationClient:
        client: CloudFormationClient = self.client("cloudformation", region)
        return client


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def access_error(operation: str, exc: ClientError) -> AwsAccessError:
    return AwsAccessError(operation, error_code(exc), str(exc.response.get("Error", {}).get("Message", "")))
