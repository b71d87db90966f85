"""SageMaker data capture as a monitoring source.

An endpoint with data capture on writes each request and its response as one JSON line under
`<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`. This reads the newest
lines back as the production table, one row per record of a request, downloading files from
the newest hour backward only until it has enough rows. Capture objects are immutable, so
labels go beside them in the shape of SageMaker Model Monitor's ground-truth JSON lines, under
`<DestinationS3Uri>/ground-truth/<endpoint>/yyyy/mm/dd/hh/`, and are merged in on reading.

One difference from Model Monitor: a label here belongs to one record, so its `eventId` is
`<eventId>:<row>`, while Model Monitor's own merge joins one label per request on the bare
`eventId`. These files serve this platform's monitoring, not a Model Monitor schedule.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from penguins_platform.capture.contract import (
    MAX_SKIPPED_EXAMPLES,
    PRODUCTION_COLUMNS,
    UNKNOWN_VERSION,
    CaptureError,
    CaptureHealth,
    ProductionBatch,
    Retention,
    check_species,
)
from penguins_platform.capture.validation import validate_rows
from penguins_platform.ml import schema

GROUND_TRUTH = "ground-truth"  # Model Monitor's folder for labels, beside the endpoints' folders
# Request bodies in MLflow's scoring protocol: records under one of these keys...
RECORD_KEYS = ("inputs", "dataframe_records", "instances")
# ...or pandas' split orient, {"dataframe_split": {"columns": [...], "data": [[...], ...]}}.
SPLIT_KEY = "dataframe_split"
# <variant>/yyyy/mm/dd/hh/<file>.jsonl under the endpoint's folder.
_CAPTURE_FILE = re.compile(
    r"(?P<variant>[^/]+)/(?P<hour>\d{4}/\d{2}/\d{2}/\d{2})/(?P<name>[^/]+\.jsonl)"
)


@dataclass(frozen=True)
class _Line:
    """One capture line: its rows (PRODUCTION_COLUMNS order), or why it was skipped."""

    rows: list[tuple]
    skipped: int = 0
    reason: str = ""


def parse_capture_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` to (bucket, prefix with a trailing slash, or "")."""
    if not uri.startswith("s3://"):
        raise ValueError(
            f"capture URI {uri!r} is not an s3:// URI; use the endpoint's data capture "
            "destination, s3://bucket/prefix"
        )
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"capture URI {uri!r} names no bucket; expected s3://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class SageMakerCapture:
    """Reads and labels one endpoint's data capture in S3 (every variant of it).

    SageMaker does not record which model version scored a request, so every row carries
    `model_version` (the version the endpoint serves, as the caller knows it) or "unknown".
    """

    def __init__(
        self, s3_client, capture_uri: str, endpoint_name: str, model_version: str | None = None
    ) -> None:
        if endpoint_name == GROUND_TRUTH:
            raise ValueError(
                f"endpoint name {GROUND_TRUTH!r} is the folder Model Monitor keeps labels in; "
                "rename the endpoint"
            )
        self.s3 = s3_client
        self.bucket, base = parse_capture_uri(capture_uri)
        self.prefix = f"{base}{endpoint_name}/"
        self.labels_prefix = f"{base}{GROUND_TRUTH}/{endpoint_name}/"
        self.model_version = model_version or UNKNOWN_VERSION

    @property
    def label(self) -> str:
        return f"SageMaker data capture s3://{self.bucket}/{self.prefix}"

    def read_newest(self, limit: int) -> ProductionBatch:
        """The newest `limit` captured rows, oldest first. A capture line that does not parse,
        or whose request and response disagree on the number of rows, is skipped and counted
        as its rows (one when unknown)."""
        if limit < 1:
            raise ValueError(f"limit must be a positive number of rows, got {limit}")
        with self._s3("read"):
            files = self._capture_files()
            if not files:
                return ProductionBatch.empty(f"{self.label} (no capture yet)")
            newest_first: list[_Line] = []
            taken, oldest_read = 0, files[0]
            for key, line in self._newest_lines(files):
                newest_first.append(line)
                oldest_read = key
                taken += len(line.rows) + line.skipped
                if taken >= limit:
                    break
            labels = self._labels(since=_labels_since(oldest_read))
        rows, skipped, reasons = _window(newest_first[::-1], limit)
        columns: dict[str, Sequence[object]] = {name: () for name in PRODUCTION_COLUMNS}
        if rows:
            columns = dict(zip(PRODUCTION_COLUMNS, zip(*rows, strict=True), strict=True))
        columns["target"] = [labels.get(str(key)) for key in columns["key"]]
        table, invalid, examples = validate_rows(columns, noun="record")
        reasons = (reasons + examples)[:MAX_SKIPPED_EXAMPLES]
        return ProductionBatch(table, skipped + invalid, reasons, self.label)

    def write_labels(self, labels: Mapping[str, str]) -> int:
        """Write one ground-truth object with a line per key not labeled yet; return how many.

        Keys are `<eventId>:<row>` as read_newest gives them. Whether the event is still in
        the capture is not checked (that would mean reading all of it): a label for an event
        that is gone is kept and never matched.
        """
        check_species(labels)
        for key in labels:
            if not re.fullmatch(r".+:\d+", str(key)):
                raise ValueError(
                    f"label key {key!r} is not '<eventId>:<row>'; use the key column of read_newest"
                )
        with self._s3("label"):
            known = self._labels(since=None)
            new = {k: v for k, v in labels.items() if k not in known}
            if not new:
                return 0
            now = datetime.now(UTC)
            key = f"{self.labels_prefix}{now:%Y/%m/%d/%H}/labels-{uuid.uuid4()}.jsonl"
            body = "".join(
                json.dumps({
                    "groundTruthData": {"data": species, "encoding": "CSV"},
                    "eventMetadata": {"eventId": event},
                    "eventVersion": "0",
                }) + "\n"
                for event, species in new.items()
            )  # fmt: skip
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode("utf-8"))
        return len(new)

    def apply_retention(self, retention: Retention, now: datetime) -> int:
        """Removes nothing and returns 0: capture objects are immutable, and the tool for
        keeping them bounded is an S3 lifecycle rule (expiration) on the capture prefix."""
        retention.cutoff(now)  # the same argument checks as every source
        return 0

    def health(self) -> CaptureHealth:
        """newest_at from the newest capture line; nothing spills and counting means reading
        every object, so spilled_rows is 0 and total_rows None."""
        with self._s3("check"):
            for key in reversed(self._capture_files()):
                times = [stamp for line in self._parse_file(key) for stamp in _times(line.rows)]
                if times:
                    return CaptureHealth(newest_at=max(times), spilled_rows=0)
        return CaptureHealth(newest_at=None, spilled_rows=0)

    @contextmanager
    def _s3(self, action: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as error:
            raise CaptureError(
                f"cannot {action} {self.label}: {error}; check the bucket exists and these "
                "credentials may list, get and put objects under the prefix"
            ) from error

    def _keys(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, key relative to `prefix`) of every object under `prefix`."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"], item["Key"][len(prefix) :]

    def _capture_files(self) -> list[str]:
        """Capture objects, oldest first: `<variant>/yyyy/mm/dd/hh/<file>.jsonl` sorted by hour
        then name (SageMaker names files by the minute and second they start)."""
        found = []
        for key, relative in self._keys(self.prefix):
            if match := _CAPTURE_FILE.fullmatch(relative):
                found.append((match["hour"], match["name"], match["variant"], key))
        return [key for *_, key in sorted(found)]

    def _newest_lines(self, files: list[str]) -> Iterator[tuple[str, _Line]]:
        """(file, line) from the newest line backward, downloading a file only when reached."""
        for key in reversed(files):
            for line in reversed(self._parse_file(key)):
                yield key, line

    def _parse_file(self, key: str) -> list[_Line]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        text = body.decode("utf-8", errors="replace")
        return [
            self._parse_line(line, f"s3://{self.bucket}/{key} line {n}")
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]

    def _parse_line(self, line: str, where: str) -> _Line:
        try:
            capture = json.loads(line)
            event = capture["eventMetadata"]
            event_id = str(event["eventId"])
            at = event.get("inferenceTime")
            data = capture["captureData"]
            records = _records(_body(data["endpointInput"]))
            predictions = _body(data["endpointOutput"])["predictions"]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return _Line([], 1, f"{where}: not a capture line ({type(error).__name__}: {error})")
        if not isinstance(predictions, list) or len(predictions) != len(records):
            count = len(predictions) if isinstance(predictions, list) else "no list of"
            return _Line(
                [],
                max(len(records), 1),
                f"event {event_id}: {len(records)} records but {count} predictions",
            )
        objects = [record for record in records if isinstance(record, dict)]
        if len(objects) < len(records):
            return _Line([], len(records), f"event {event_id}: a record is not an object")
        rows = []
        for i, (record, answer) in enumerate(zip(objects, predictions, strict=True)):
            if not isinstance(answer, dict):
                answer = {"prediction": answer}
            rows.append((
                f"{event_id}:{i}", event_id, i, at, self.model_version,
                *(_scalar(record.get(name)) for name in schema.FEATURES),
                _scalar(answer.get("prediction")), _scalar(answer.get("confidence")), None,
            ))  # fmt: skip
        return _Line(rows)

    def _labels(self, since: str | None) -> dict[str, str]:
        """Stored ground truth by key, from folders no older than `since` (an hour path), or
        all; the first label of a key wins."""
        labels: dict[str, str] = {}
        files = sorted(
            (relative, key)
            for key, relative in self._keys(self.labels_prefix)
            if since is None or relative[:13] >= since
        )
        for _, key in files:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            for line in body.decode("utf-8", errors="replace").splitlines():
                try:
                    truth = json.loads(line)
                    event = str(truth["eventMetadata"]["eventId"])
                    species = truth["groundTruthData"]["data"]
                except (ValueError, KeyError, TypeError):
                    continue  # not a label: nothing to merge
                if species in schema.SPECIES:
                    labels.setdefault(event, species)
        return labels


def _body(part: Mapping[str, object]) -> Any:
    """A captured request or response body, decoded: JSON text, or base64 of it. Any JSON
    value: `_parse_line` turns a shape it cannot read into a skipped line."""
    data = part["data"]
    encoding = str(part.get("encoding", "JSON")).upper()
    if encoding == "BASE64":
        data = base64.b64decode(str(data), validate=True).decode("utf-8")
    elif encoding != "JSON":
        raise ValueError(f"encoding {encoding} is not JSON")
    return json.loads(data) if isinstance(data, str) else data


def _records(request: object) -> list[object]:
    if not isinstance(request, dict):
        raise TypeError("the request body is not a JSON object")
    for name in RECORD_KEYS:
        if isinstance(request.get(name), list):
            return request[name]
    split = request.get(SPLIT_KEY)
    if isinstance(split, dict):
        return [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]
    raise KeyError(f"none of {', '.join((*RECORD_KEYS, SPLIT_KEY))} in the request body")


def _scalar(value: object) -> object:
    """JSON values as a table cell: nested objects and booleans as their JSON text, which the
    checks then call what they are (not a number) instead of failing on them."""
    if value is None or isinstance(value, str | float) or type(value) is int:
        return value
    return json.dumps(value)


def _times(rows: list[tuple]) -> Iterator[datetime]:
    at = PRODUCTION_COLUMNS.index("captured_at")
    for row in rows:
        try:
            moment = datetime.fromisoformat(row[at])
        except (TypeError, ValueError):
            continue
        yield moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _labels_since(key: str) -> str:
    """The oldest ground-truth folder (yyyy/mm/dd/hh) that can label the capture in `key`:
    labels come after the capture, but a labeler's clock may lag SageMaker's, so a day early."""
    hour = datetime.strptime("/".join(key.split("/")[-5:-1]), "%Y/%m/%d/%H")
    return f"{hour - timedelta(days=1):%Y/%m/%d/%H}"


def _window(lines: list[_Line], limit: int) -> tuple[list[tuple], int, list[str]]:
    """The newest `limit` row slots of `lines` (oldest first): rows, skipped, reasons."""
    rows: list[tuple] = []
    skipped, reasons, room = 0, [], limit
    for line in reversed(lines):
        if room <= 0:
            break
        if line.skipped:
            skipped += min(line.skipped, room)
            reasons.append(line.reason)
            room -= line.skipped
        else:
            rows.extend(reversed(line.rows[-room:]))
            room -= len(line.rows)
    return rows[::-1], skipped, reasons[::-1]
