"""SageMaker data capture read as production data, from S3 (moto in server mode): capture
lines shaped like AWS writes them, the newest rows across hour folders, labels as Model
Monitor's ground truth beside the capture, written once."""

from __future__ import annotations

import base64
import json
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from penguins_platform.capture.contract import PRODUCTION_COLUMNS, CaptureError, Retention
from penguins_platform.capture.sagemaker import SageMakerCapture
from penguins_platform.ml import schema

BUCKET = "capture-bucket"
URI = f"s3://{BUCKET}/datacapture"
ENDPOINT = "penguins-prod"
# The top of this hour: labels go in the folder of the hour they are written, after capture.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
GENTOO = dict(schema.SAMPLE_PENGUIN)
ADELIE = {"island": "Torgersen", "culmen_length_mm": 39.1, "culmen_depth_mm": 18.7,
          "flipper_length_mm": 181.0, "body_mass_g": 3750.0, "sex": "FEMALE"}  # fmt: skip


def capture_line(event_id: str, records: list[dict], species: list[str], at: datetime,
                 encoding: str = "JSON", request_key: str = "inputs") -> str:  # fmt: skip
    """One line as SageMaker data capture writes it (CaptureMode Input and Output)."""
    request = json.dumps({request_key: records})
    response = json.dumps({"predictions": [{"prediction": s, "confidence": 0.97} for s in species]})

    def part(mode: str, body: str) -> dict:
        data = base64.b64encode(body.encode()).decode() if encoding == "BASE64" else body
        return {"observedContentType": "application/json", "mode": mode, "data": data,
                "encoding": encoding}  # fmt: skip

    return json.dumps({
        "captureData": {"endpointInput": part("INPUT", request),
                        "endpointOutput": part("OUTPUT", response)},
        "eventMetadata": {"eventId": event_id, "inferenceTime": f"{at:%Y-%m-%dT%H:%M:%S}Z"},
        "eventVersion": "0",
    })  # fmt: skip


def put_capture(s3, at: datetime, lines: list[str], variant: str = "primary") -> str:
    key = (f"datacapture/{ENDPOINT}/{variant}/{at:%Y/%m/%d/%H}/"
           f"{at:%M-%S}-123-{uuid.uuid4()}.jsonl")  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=key, Body="\n".join(lines).encode() + b"\n")
    return key


class CountingS3:
    """The real client, noting which objects were downloaded."""

    def __init__(self, client) -> None:
        self.client = client
        self.downloaded: list[str] = []

    def get_object(self, **kwargs):
        self.downloaded.append(kwargs["Key"])
        return self.client.get_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.fixture
def s3(moto_server):
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def ground_truth(s3) -> list[dict]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"datacapture/ground-truth/{ENDPOINT}/")
    lines = []
    for item in listed.get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
        lines += [json.loads(line) for line in body.splitlines()]
    return lines


def test_capture_lines_read_as_production_rows(s3):
    put_capture(s3, NOW, [
        capture_line("e1", [GENTOO, {"island": "Dream", "sex": None}], ["Gentoo", "Chinstrap"],
                     NOW),
        "{\"captureData\": truncated by a crash",
        capture_line("e2", [ADELIE], ["Adelie"], NOW + timedelta(seconds=5), encoding="BASE64"),
    ])  # fmt: skip

    batch = SageMakerCapture(s3, URI, ENDPOINT, model_version="12").read_newest(100)

    rows = batch.rows
    assert tuple(rows.columns) == PRODUCTION_COLUMNS
    assert rows[["key", "request_id", "row", "prediction", "model_version"]].values.tolist() == [
        ["e1:0", "e1", 0, "Gentoo", "12"],
        ["e1:1", "e1", 1, "Chinstrap", "12"],
        ["e2:0", "e2", 0, "Adelie", "12"],
    ]
    assert rows.loc[0, list(schema.FEATURES)].tolist() == list(GENTOO.values())
    assert rows.loc[2, list(schema.FEATURES)].tolist() == list(ADELIE.values())
    assert math.isnan(rows.loc[1, "body_mass_g"]) and rows.loc[1, "sex"] is None
    assert rows["captured_at"].tolist() == [NOW, NOW, NOW + timedelta(seconds=5)]
    assert rows["confidence"].tolist() == [0.97] * 3 and rows["target"].tolist() == [None] * 3
    assert batch.skipped == 1
    assert "line 2: not a capture line" in batch.skipped_examples[0]
    assert batch.source == f"SageMaker data capture {URI}/{ENDPOINT}/"


def test_the_version_is_unknown_unless_the_caller_knows_it(s3):
    put_capture(s3, NOW, [capture_line("e1", [GENTOO], ["Gentoo"], NOW)])

    assert SageMakerCapture(s3, URI, ENDPOINT).read_newest(1).rows["model_version"][0] == "unknown"


def test_the_newest_rows_come_from_the_newest_hours_without_downloading_older_ones(s3):
    keys = {}
    for hours in (3, 2, 1, 0):  # two 2-row requests an hour; a second variant at 2 h ago
        at = NOW - timedelta(hours=hours)
        lines = [capture_line(f"h{hours}-{n}", [GENTOO, ADELIE], ["Gentoo", "Adelie"],
                              at + timedelta(minutes=n)) for n in (0, 1)]  # fmt: skip
        keys[hours] = put_capture(s3, at, lines, variant="shadow" if hours == 2 else "primary")
    counting = CountingS3(s3)

    rows = SageMakerCapture(counting, URI, ENDPOINT).read_newest(9).rows

    assert rows["key"].tolist() == [
        "h2-1:1",
        "h1-0:0", "h1-0:1", "h1-1:0", "h1-1:1",
        "h0-0:0", "h0-0:1", "h0-1:0", "h0-1:1",
    ]  # fmt: skip
    assert rows["captured_at"].is_monotonic_increasing
    assert sorted(counting.downloaded) == sorted([keys[2], keys[1], keys[0]])


def test_a_line_whose_request_and_response_disagree_is_skipped_as_its_rows(s3):
    put_capture(s3, NOW, [
        capture_line("short", [GENTOO, GENTOO, ADELIE], ["Gentoo", "Gentoo"], NOW),
        capture_line("fine", [ADELIE], ["Adelie"], NOW),
    ])  # fmt: skip

    batch = SageMakerCapture(s3, URI, ENDPOINT).read_newest(100)

    assert batch.rows["key"].tolist() == ["fine:0"]
    assert batch.skipped == 3
    assert batch.skipped_examples == ["event short: 3 records but 2 predictions"]


def test_corrupt_values_in_a_parsed_line_skip_only_their_row(s3):
    put_capture(s3, NOW, [
        capture_line("e", [GENTOO, {**ADELIE, "body_mass_g": {"kg": 3.7}}, ADELIE],
                     ["Gentoo", "Adelie", "Penguin?"], NOW),
    ])  # fmt: skip

    batch = SageMakerCapture(s3, URI, ENDPOINT).read_newest(100)

    assert batch.rows["key"].tolist() == ["e:0"]
    assert batch.skipped_examples == [
        "record e:1: body_mass_g is '{\"kg\": 3.7}', not a finite number",
        "record e:2: prediction is 'Penguin?', not a species",
    ]


@pytest.mark.parametrize("request_key", ["dataframe_records", "instances"])
def test_every_record_key_of_the_scoring_protocol_is_read(s3, request_key):
    put_capture(s3, NOW, [capture_line("e", [GENTOO], ["Gentoo"], NOW, request_key=request_key)])

    assert SageMakerCapture(s3, URI, ENDPOINT).read_newest(5).rows["key"].tolist() == ["e:0"]


def test_labels_round_trip_as_model_monitor_ground_truth_written_once(s3):
    put_capture(s3, NOW, [
        capture_line("e1", [GENTOO, ADELIE], ["Gentoo", "Gentoo"], NOW),
        capture_line("e2", [ADELIE], ["Adelie"], NOW),
    ])  # fmt: skip
    source = SageMakerCapture(s3, URI, ENDPOINT)

    assert source.write_labels({"e1:0": "Gentoo", "e1:1": "Adelie"}) == 2
    assert source.write_labels({"e1:0": "Gentoo", "e1:1": "Adelie"}) == 0
    assert source.write_labels({"e1:1": "Chinstrap", "e2:0": "Adelie"}) == 1

    rows = source.read_newest(100).rows
    assert rows["target"].tolist() == ["Gentoo", "Adelie", "Adelie"]
    assert len(rows) == 3  # the ground truth beside the capture is not read as capture
    stored = sorted(ground_truth(s3), key=lambda truth: truth["eventMetadata"]["eventId"])
    assert stored == [
        {"groundTruthData": {"data": species, "encoding": "CSV"},
         "eventMetadata": {"eventId": key}, "eventVersion": "0"}
        for key, species in [("e1:0", "Gentoo"), ("e1:1", "Adelie"), ("e2:0", "Adelie")]
    ]  # fmt: skip
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="datacapture/ground-truth/")["Contents"]
    assert (
        all(
            item["Key"].startswith(f"datacapture/ground-truth/{ENDPOINT}/20")
            and item["Key"].split("/")[-1].startswith("labels-")
            for item in listed
        )
        and len(listed) == 2
    )


def test_an_unknown_species_or_key_writes_no_label(s3):
    put_capture(s3, NOW, [capture_line("e1", [GENTOO], ["Gentoo"], NOW)])
    source = SageMakerCapture(s3, URI, ENDPOINT)

    with pytest.raises(ValueError, match="'Emperor', not a species"):
        source.write_labels({"e1:0": "Emperor"})
    with pytest.raises(ValueError, match="label key 'e1' is not '<eventId>:<row>'"):
        source.write_labels({"e1": "Gentoo"})
    assert ground_truth(s3) == []


def test_an_endpoint_without_capture_reads_empty(s3):
    source = SageMakerCapture(s3, URI, ENDPOINT)

    batch = source.read_newest(10)

    assert batch.rows.empty and tuple(batch.rows.columns) == PRODUCTION_COLUMNS
    assert "no capture yet" in batch.source
    health = source.health()
    assert (health.newest_at, health.spilled_rows, health.total_rows) == (None, 0, None)


def test_health_reports_the_newest_capture_time(s3):
    put_capture(s3, NOW - timedelta(hours=1), [capture_line("old", [GENTOO], ["Gentoo"], NOW)])
    put_capture(s3, NOW, [
        capture_line("a", [GENTOO], ["Gentoo"], NOW + timedelta(minutes=3)),
        capture_line("b", [GENTOO], ["Gentoo"], NOW + timedelta(minutes=7)),
        "not json",
    ])  # fmt: skip

    assert SageMakerCapture(s3, URI, ENDPOINT).health().newest_at == NOW + timedelta(minutes=7)


def test_retention_leaves_capture_to_an_s3_lifecycle_rule(s3):
    key = put_capture(s3, NOW - timedelta(days=400), [capture_line("e", [GENTOO], ["Gentoo"], NOW)])
    source = SageMakerCapture(s3, URI, ENDPOINT)

    assert source.apply_retention(Retention(max_age_days=1, max_rows=1), NOW) == 0
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0


def test_a_capture_uri_that_is_not_s3_is_refused(s3):
    with pytest.raises(ValueError, match="'/tmp/capture' is not an s3:// URI"):
        SageMakerCapture(s3, "/tmp/capture", ENDPOINT)
    with pytest.raises(ValueError, match="names no bucket"):
        SageMakerCapture(s3, "s3:///prefix", ENDPOINT)


def test_a_missing_bucket_raises_a_capture_error(s3):
    source = SageMakerCapture(s3, "s3://no-such-bucket/capture", ENDPOINT)

    with pytest.raises(
        CaptureError, match="cannot read SageMaker data capture s3://no-such-bucket"
    ):
        source.read_newest(10)
