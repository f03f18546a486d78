"""An AWS-like endpoint for benchmarks: what decides speed on real AWS, with a read side that keeps up.

    with AwsLike(moto_endpoint, latency=0.05) as env:
        env.load_fleet(fleet)              # 50,000 resources in about a second, no API calls
        ... point any boto3 tool at env.endpoint (AWS_ENDPOINT_URL) ...
        env.stats()                        # calls by action, throttles, the emulator's own time

Every request, whatever the tool, goes through the same three things:
- a per-call latency (default 50 ms), slept in the request's own thread so concurrent calls overlap as
  they do on AWS;
- EC2's request-rate token buckets, one per region and API as AWS applies them (non-mutating actions:
  100 tokens, 20 a second; mutating: 200 tokens, 10 a second), answering RequestLimitExceeded (HTTP 503)
  when a bucket is empty;
- EC2's page sizes: at most 500 volumes, and 1,000 instances or snapshots, a page, whatever MaxResults asks.

The fleet's EC2 calls (Describe*, CreateTags, DeleteTags, DeleteVolume, DeleteSnapshot, StopInstances,
TerminateInstances) are answered here from memory: moto scans every tag on every describe, which at
10,000 resources already costs it more than either tool's own work. Each resource's XML is rendered once
from botocore's own EC2 model (and again only when it changes), so what a tool parses is what EC2 sends.
Every other call (DynamoDB, SNS, CloudWatch, STS, SSM) is forwarded to the moto server behind. Two of the
moto server's costs that AWS does not have are taken away (`queries_by_partition`, the listen backlog):
moto answers a DynamoDB Query by sorting the whole table, so each Query would cost more as the ledger grew,
and socketserver's backlog of 5 would drop the connections of a client opening 32 at once.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import inspect
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import botocore.session

from trainctl.cli.sandbox_fleet import free_loopback_port

EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
# GPU families whose types come with NVMe instance-store volumes (a stop loses what they hold).
INSTANCE_STORE_FAMILIES = frozenset(
    {"g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "trn1", "trn1n"}
)
PAGE_LIMITS = {"DescribeVolumes": 500, "DescribeInstances": 1000, "DescribeSnapshots": 1000, "DescribeImages": 1000}
READ_PREFIXES = ("Describe", "Get", "List")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class BucketSpec:
    capacity: float
    refill_per_second: float


# The request-rate defaults AWS documents for an account's EC2 API, per region and per API.
NON_MUTATING = BucketSpec(100, 20)
MUTATING = BucketSpec(200, 10)


class TokenBucket:
    def __init__(self, spec: BucketSpec) -> None:
        self._spec = spec
        self._tokens = spec.capacity
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._spec.capacity, self._tokens + (now - self._at) * self._spec.refill_per_second)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


# --- EC2 responses from botocore's model -------------------------------------------------------------


class Ec2Xml:
    """Serialises parsed-shape dicts (what boto3 returns) into the XML EC2 sends, from botocore's model."""

    def __init__(self) -> None:
        self._model = botocore.session.get_session().get_service_model("ec2")

    def shape(self, name: str) -> Any:
        return self._model.shape_for(name)

    def item(self, shape: Any, value: Any) -> str:
        return f"<item>{self._body(shape, value)}</item>"

    def _body(self, shape: Any, value: Any) -> str:
        kind = shape.type_name
        if kind == "structure":
            parts = []
            for name, member in shape.members.items():
                if name not in value or value[name] is None:
                    continue
                tag = member.serialization.get("name", name)
                parts.append(f"<{tag}>{self._body(member, value[name])}</{tag}>")
            return "".join(parts)
        if kind == "list":
            return "".join(f"<item>{self._body(shape.member, v)}</item>" for v in value)
        if kind == "timestamp":
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if kind == "boolean":
            return "true" if value else "false"
        return escape(str(value))


# --- the fleet ---------------------------------------------------------------------------------------


@dataclass
class Record:
    data: dict[str, Any]
    xml: str | None = None


@dataclass
class RegionFleet:
    instances: dict[str, Record] = field(default_factory=dict)
    volumes: dict[str, Record] = field(default_factory=dict)
    snapshots: dict[str, Record] = field(default_factory=dict)
    images: dict[str, Record] = field(default_factory=dict)


_KINDS = {
    "DescribeInstances": ("instances", "Instance", "InstanceId"),
    "DescribeVolumes": ("volumes", "Volume", "VolumeId"),
    "DescribeSnapshots": ("snapshots", "Snapshot", "SnapshotId"),
    "DescribeImages": ("images", "Image", "ImageId"),
}


class Ec2Error(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _indexed(params: dict[str, str], prefix: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)$")
    found = sorted((int(m.group(1)), v) for k, v in params.items() if (m := pattern.match(k)))
    return [v for _, v in found]


def _filters(params: dict[str, str]) -> dict[str, set[str]]:
    filters: dict[str, set[str]] = {}
    for key, name in params.items():
        if m := re.match(r"^Filter\.(\d+)\.Name$", key):
            filters[name] = set(_indexed(params, f"Filter.{m.group(1)}.Value"))
    return filters


def _tags(data: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in data.get("Tags", [])}


def _attribute(kind: str, data: dict[str, Any], name: str) -> str | None:
    if name.startswith("tag:"):
        return _tags(data).get(name[4:])
    simple = {
        "instance-id": "InstanceId",
        "volume-id": "VolumeId",
        "snapshot-id": "SnapshotId",
        "image-id": "ImageId",
        "instance-type": "InstanceType",
        "owner-id": "OwnerId",
        "availability-zone": "AvailabilityZone",
    }
    if name in simple:
        return data.get(simple[name])
    if name == "instance-state-name":
        return str(data["State"]["Name"])
    if name == "status":
        return str(data["State"])
    if name == "state":
        return str(data["State"] if kind != "instances" else data["State"]["Name"])
    raise Ec2Error("InvalidParameterValue", f"the bench fleet does not filter on {name!r}")


def _matches(kind: str, data: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    for name, values in filters.items():
        if name == "tag-key":
            if not values & set(_tags(data)):
                return False
        elif _attribute(kind, data, name) not in values:
            return False
    return True


class Fleet:
    """The fleet's EC2 state by region; every method holds the lock, so requests see whole changes."""

    def __init__(self, xml: Ec2Xml) -> None:
        self._xml = xml
        self._lock = threading.Lock()
        self._regions: dict[str, RegionFleet] = {}
        self.account = "123456789012"

    def load(self, regions: dict[str, RegionFleet]) -> None:
        with self._lock:
            self._regions = regions

    def region(self, name: str) -> RegionFleet:
        return self._regions.setdefault(name, RegionFleet())

    def prerender(self) -> None:
        """Renders every resource's XML now, so that no tool's first describe waits on it."""
        with self._lock:
            for region in self._regions.values():
                for kind, shape_name, _ in _KINDS.values():
                    shape = self._xml.shape(shape_name)
                    for record in getattr(region, kind).values():
                        if record.xml is None:
                            record.xml = self._xml.item(shape, record.data)

    def is_alive(self, resource_id: str) -> bool:
        """Still there: an instance not terminated, a volume or snapshot not deleted."""
        with self._lock:
            for region in self._regions.values():
                if resource_id in region.instances:
                    return bool(region.instances[resource_id].data["State"]["Name"] != "terminated")
                if resource_id in region.volumes or resource_id in region.snapshots:
                    return True
        return False

    def describe(self, region: str, action: str, params: dict[str, str]) -> str:
        kind, shape_name, id_key = _KINDS[action]
        shape = self._xml.shape(shape_name)
        ids = set(
            _indexed(params, "InstanceId")
            + _indexed(params, "VolumeId")
            + _indexed(params, "SnapshotId")
            + _indexed(params, "ImageId")
        )
        filters = _filters(params)
        limit = PAGE_LIMITS[action]
        asked = int(params.get("MaxResults", limit))
        page_size = max(1, min(asked, limit))
        start = int(params.get("NextToken", "0") or 0)
        with self._lock:
            records = list(getattr(self.region(region), kind).values())
            if ids:
                missing = ids - {r.data[id_key] for r in records}
                if missing:
                    noun = {"instances": "InstanceID", "volumes": "Volume", "snapshots": "Snapshot", "images": "AMIID"}
                    raise Ec2Error(f"Invalid{noun[kind]}.NotFound", f"{sorted(missing)[0]} does not exist")
                records = [r for r in records if r.data[id_key] in ids]
            if filters:
                records = [r for r in records if _matches(kind, r.data, filters)]
            page = records[start : start + page_size]
            items = []
            for record in page:
                if kind == "instances":
                    # One reservation per instance: EC2 counts MaxResults in instances, not reservations.
                    if record.xml is None:
                        record.xml = self._xml.item(shape, record.data)
                    items.append(
                        f"<item><reservationId>r-{record.data['InstanceId'][2:]}</reservationId>"
                        f"<ownerId>{self.account}</ownerId><groupSet/>"
                        f"<instancesSet>{record.xml}</instancesSet></item>"
                    )
                else:
                    if record.xml is None:
                        record.xml = self._xml.item(shape, record.data)
                    items.append(record.xml)
        following = start + page_size
        token = f"<nextToken>{following}</nextToken>" if following < len(records) else ""
        list_tag = {
            "instances": "reservationSet",
            "volumes": "volumeSet",
            "snapshots": "snapshotSet",
            "images": "imagesSet",
        }[kind]
        return f"<{list_tag}>{''.join(items)}</{list_tag}>{token}"

    def _find(self, region: RegionFleet, resource_id: str) -> Record | None:
        for bucket in (region.instances, region.volumes, region.snapshots, region.images):
            if resource_id in bucket:
                return bucket[resource_id]
        return None

    def change_tags(self, region_name: str, params: dict[str, str], *, add: bool) -> str:
        resources = _indexed(params, "ResourceId")
        pairs: dict[str, str | None] = {}
        for key, name in params.items():
            if m := re.match(r"^Tag\.(\d+)\.Key$", key):
                pairs[name] = params.get(f"Tag.{m.group(1)}.Value")
        with self._lock:
            region = self.region(region_name)
            records = [self._find(region, r) for r in resources]
            if any(r is None for r in records):
                missing = next(rid for rid, r in zip(resources, records, strict=True) if r is None)
                raise Ec2Error("InvalidID", f"The ID '{missing}' is not valid")
            for record in records:
                assert record is not None
                current = _tags(record.data)
                for key, value in pairs.items():
                    if add:
                        current[key] = value or ""
                    elif value is None or current.get(key) == value:
                        current.pop(key, None)
                record.data["Tags"] = [{"Key": k, "Value": v} for k, v in current.items()]
                record.xml = None
        return "<return>true</return>"

    def delete_volume(self, region_name: str, volume_id: str) -> str:
        with self._lock:
            volumes = self.region(region_name).volumes
            record = volumes.get(volume_id)
            if record is None:
                raise Ec2Error("InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.")
            if record.data["State"] != "available":
                raise Ec2Error("VolumeInUse", f"Volume {volume_id} is currently attached")
            del volumes[volume_id]
        return "<return>true</return>"

    def delete_snapshot(self, region_name: str, snapshot_id: str) -> str:
        with self._lock:
            region = self.region(region_name)
            if snapshot_id not in region.snapshots:
                raise Ec2Error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
            for image in region.images.values():
                for mapping in image.data.get("BlockDeviceMappings", []):
                    if mapping.get("Ebs", {}).get("SnapshotId") == snapshot_id:
                        raise Ec2Error(
                            "InvalidSnapshot.InUse",
                            f"The snapshot {snapshot_id} is currently in use by {image.data['ImageId']}",
                        )
            del region.snapshots[snapshot_id]
        return "<return>true</return>"

    def change_state(self, region_name: str, params: dict[str, str], target: str) -> str:
        ids = _indexed(params, "InstanceId")
        codes = {"running": 16, "stopped": 80, "terminated": 48}
        changes = []
        with self._lock:
            instances = self.region(region_name).instances
            missing = [i for i in ids if i not in instances]
            if missing:
                raise Ec2Error("InvalidInstanceID.NotFound", f"The instance ID '{missing[0]}' does not exist")
            for instance_id in ids:
                record = instances[instance_id]
                previous = record.data["State"]
                record.data["State"] = {"Code": codes[target], "Name": target}
                if target == "stopped":
                    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S GMT")
                    record.data["StateTransitionReason"] = f"User initiated ({stamp})"
                record.xml = None
                changes.append(
                    f"<item><instanceId>{instance_id}</instanceId>"
                    f"<currentState><code>{codes[target]}</code><name>{target}</name></currentState>"
                    f"<previousState><code>{previous['Code']}</code><name>{previous['Name']}</name></previousState>"
                    "</item>"
                )
        return f"<instancesSet>{''.join(changes)}</instancesSet>"


# --- the server --------------------------------------------------------------------------------------


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # Time the emulator spent answering, without the simulated latency: the fleet here, moto behind.
    emulator_seconds: float = 0.0


class AwsLike:
    def __init__(
        self,
        moto_endpoint: str,
        *,
        latency: float = 0.05,
        non_mutating: BucketSpec = NON_MUTATING,
        mutating: BucketSpec = MUTATING,
        serve_ec2: bool = True,
    ) -> None:
        """serve_ec2=False sends EC2 to moto as well (buckets and latency still apply): for benchmarks of a
        few resources that other moto services (SSM, Step Functions) must also know about."""
        self.latency = latency
        self.serve_ec2 = serve_ec2
        self._moto = urlsplit(moto_endpoint)
        self._specs = (non_mutating, mutating)
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self.fleet = Fleet(Ec2Xml())
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None
        self._moto_patch: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        self.endpoint = ""

    # -- control --

    def __enter__(self) -> AwsLike:
        self._moto_patch = queries_by_partition()
        self._moto_patch.__enter__()
        port = free_loopback_port()
        handler = _handler_for(self)
        self._server = _Server(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._moto_patch.__exit__(None, None, None)

    def load_fleet(self, regions: dict[str, RegionFleet]) -> None:
        self.fleet.load(regions)
        self.fleet.prerender()
        with self._buckets_lock:
            self._buckets.clear()

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats = Stats()
        with self._buckets_lock:
            # Each run starts with full buckets, as after a quiet minute on AWS.
            self._buckets.clear()

    def stats(self) -> Stats:
        with self._stats_lock:
            return Stats(
                Counter(self._stats.calls),
                Counter(self._stats.throttled),
                Counter(self._stats.errors),
                self._stats.emulator_seconds,
            )

    # -- requests --

    def _bucket(self, region: str, action: str) -> TokenBucket:
        key = (region, action)
        with self._buckets_lock:
            if key not in self._buckets:
                spec = self._specs[0] if action.startswith(READ_PREFIXES) else self._specs[1]
                self._buckets[key] = TokenBucket(spec)
            return self._buckets[key]

    def _count(self, name: str, *, throttled: bool = False, error: str | None = None, spent: float = 0.0) -> None:
        with self._stats_lock:
            self._stats.calls[name] += 1
            if throttled:
                self._stats.throttled[name] += 1
            if error:
                self._stats.errors[f"{name}:{error}"] += 1
            self._stats.emulator_seconds += spent

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        started = time.perf_counter()
        lowered = {k.lower(): v for k, v in headers.items()}
        scope = _CREDENTIAL_SCOPE.search(lowered.get("authorization", ""))
        region, service = (scope.group(1), scope.group(2)) if scope else ("us-east-1", "unknown")
        if service == "ec2":
            params = dict(parse_qsl(body.decode()))
            action = params.get("Action", "")
            name = f"ec2:{action}"
            if not self._bucket(region, action).take():
                status, payload = 503, _ec2_error("RequestLimitExceeded", "Request limit exceeded.")
                self._count(name, throttled=True, spent=time.perf_counter() - started)
                time.sleep(self.latency)
                return status, {"Content-Type": "text/xml"}, payload
        if service == "ec2" and self.serve_ec2:
            try:
                inner = self._ec2(region, action, params)
                status = 200
                payload = (
                    f'<?xml version="1.0" encoding="UTF-8"?><{action}Response xmlns="{EC2_NAMESPACE}">'
                    f"<requestId>{uuid.uuid4()}</requestId>{inner}</{action}Response>"
                ).encode()
                self._count(name, spent=time.perf_counter() - started)
            except Ec2Error as exc:
                status, payload = exc.status, _ec2_error(exc.code, exc.message)
                self._count(name, error=exc.code, spent=time.perf_counter() - started)
            time.sleep(self.latency)
            return status, {"Content-Type": "text/xml"}, payload
        status, reply_headers, payload = self._forward(method, path, headers, body)
        self._count(f"{service}:{_operation(path, lowered, body)}", spent=time.perf_counter() - started)
        time.sleep(self.latency)
        return status, reply_headers, payload

    def _ec2(self, region: str, action: str, params: dict[str, str]) -> str:
        if action in _KINDS:
            return self.fleet.describe(region, action, params)
        if action == "CreateTags":
            return self.fleet.change_tags(region, params, add=True)
        if action == "DeleteTags":
            return self.fleet.change_tags(region, params, add=False)
        if action == "DeleteVolume":
            return self.fleet.delete_volume(region, params["VolumeId"])
        if action == "DeleteSnapshot":
            return self.fleet.delete_snapshot(region, params["SnapshotId"])
        if action == "StopInstances":
            return self.fleet.change_state(region, params, "stopped")
        if action == "TerminateInstances":
            return self.fleet.change_state(region, params, "terminated")
        return self._ec2_facts(action, params)

    @staticmethod
    def _ec2_facts(action: str, params: dict[str, str]) -> str:
        """What the fleet has none of (launch templates, spot requests, guards), and what its types are."""
        if action == "DescribeLaunchTemplates":
            return "<launchTemplates/>"
        if action == "DescribeSpotInstanceRequests":
            return "<spotInstanceRequestSet/>"
        if action == "DescribeInstanceTypes":
            items = "".join(
                f"<item><instanceType>{escape(name)}</instanceType><instanceStorageSupported>"
                f"{str(name.split('.')[0] in INSTANCE_STORE_FAMILIES).lower()}</instanceStorageSupported></item>"
                for key, name in sorted(params.items())
                if key.startswith("InstanceType.")
            )
            return f"<instanceTypeSet>{items}</instanceTypeSet>"
        if action == "DescribeInstanceAttribute":
            attribute = params.get("Attribute", "")
            return (
                f"<instanceId>{escape(params.get('InstanceId', ''))}</instanceId>"
                f"<{attribute}><value>false</value></{attribute}>"
            )
        if action == "DescribeSnapshotAttribute":
            return f"<snapshotId>{escape(params.get('SnapshotId', ''))}</snapshotId><createVolumePermission/>"
        raise Ec2Error("UnsupportedOperation", f"the bench fleet does not serve {action}")

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = getattr(self._local, "moto", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._moto.hostname or "127.0.0.1", self._moto.port, timeout=60)
            self._local.moto = connection
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError):
            self._local.moto = None
            connection.close()
            raise
        keep = {k: v for k, v in response.getheaders() if k.lower() not in ("transfer-encoding", "connection")}
        keep["Content-Length"] = str(len(payload))
        return response.status, keep, payload


def _operation(path: str, headers: dict[str, str], body: bytes) -> str:
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    # Smithy RPC v2 (CloudWatch): the operation is the last part of the path.
    smithy = re.search(r"/operation/([A-Za-z]+)", path)
    if smithy:
        return smithy.group(1)
    action = dict(parse_qsl(body.decode(errors="replace"))).get("Action") if body else None
    return action or "unknown"


def _ec2_error(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()


class _Server(ThreadingHTTPServer):
    # socketserver's backlog of 5 drops the SYNs of a client opening 32 connections at once, each then retried
    # a second later: a cost no AWS endpoint has.
    request_queue_size = 128


_QUERIED_PARTITION = threading.local()


@contextlib.contextmanager
def queries_by_partition() -> Iterator[None]:
    """While open, this process's moto answers a DynamoDB Query on a table from the queried partition alone.

    moto reads every item of the table, sorted, and keeps those of the partition: a Query's cost grows with the
    table, where DynamoDB's grows with the partition. Same items, same order; index queries are left as they are.
    """
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "by_partition", False):  # an enclosing AwsLike already answers so
        yield
        return
    query, all_items = Table.query, Table.all_items
    signature = inspect.signature(query)

    @functools.wraps(query)
    def partition_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        if bound.arguments.get("index_name") or not self.range_key_attr or bound.arguments["hash_key"] is None:
            return query(self, *args, **kwargs)
        _QUERIED_PARTITION.key = bound.arguments["hash_key"]
        try:
            return query(self, *args, **kwargs)
        finally:
            _QUERIED_PARTITION.key = None

    @functools.wraps(all_items)
    def partition_items(self: Any) -> Any:
        key = getattr(_QUERIED_PARTITION, "key", None)
        if key is None:
            return all_items(self)
        return sorted(self.items.get(key, {}).values(), key=lambda item: item.range_key)

    partition_query.by_partition = True  # type: ignore[attr-defined]
    Table.query, Table.all_items = partition_query, partition_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        Table.query, Table.all_items = query, all_items  # type: ignore[method-assign]


def _handler_for(env: AwsLike) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            status, reply_headers, payload = env.handle(self.command, self.path, headers, body)
            self.send_response(status)
            for key, value in reply_headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815 - http.server's names

    return Handler


def stats_json(stats: Stats) -> dict[str, Any]:
    return {
        "calls": dict(stats.calls),
        "throttled": dict(stats.throttled),
        "errors": dict(stats.errors),
        "emulator_seconds": round(stats.emulator_seconds, 3),
    }
