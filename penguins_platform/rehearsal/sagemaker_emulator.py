"""What moto lacks for SageMaker deployments, patched into its backend.

moto (run in server mode in this process: the rehearsal's, or a test's) has no UpdateEndpoint
and appends tags instead of replacing them. Its sagemaker-runtime answers canned bodies; here
it answers like the MLflow serving container would, by loading the numpy model from the
`model.tar.gz` that the endpoint's model points at in (moto's) S3, and, when the endpoint
captures, writes the call where SageMaker data capture would. Faults are switches.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from moto.core.exceptions import JsonRESTError
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from penguins_platform.rehearsal.aws import ACCOUNT


class Patcher(Protocol):
    """What patches moto: pytest's `monkeypatch`, or the rehearsal's `Patches`."""

    def setattr(self, target: Any, name: str, value: Any, raising: bool = True) -> None: ...


@dataclass
class SageMakerEmulator:
    """Switches for the faults a test wants, and counts of the calls it saw."""

    region: str = "us-east-1"
    stuck_updates: bool = False
    # Write data capture as SageMaker would (the rehearsal); off, a test writes its own lines.
    captures: bool = False
    failing_update: str | None = None
    throttled: Counter = field(default_factory=Counter)
    calls: Counter = field(default_factory=Counter)

    @property
    def backend(self) -> SageMakerModelBackend:
        return sagemaker_backends[ACCOUNT][self.region]

    def throttle(self, action: str, times: int) -> None:
        self.throttled[action] = times


def _throttled(emulator: SageMakerEmulator, action: str, original):
    def handler(self: SageMakerResponse):
        emulator.calls[action] += 1
        if emulator.throttled[action] > 0:
            emulator.throttled[action] -= 1
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return original(self)

    return handler


def _predict(endpoint_name: str, body: bytes, region: str) -> str:
    """Score like the MLflow pyfunc container: {"inputs": [...]} in, {"predictions": [...]} out."""
    from penguins_platform.ml.inference import InferenceModel

    backend = sagemaker_backends[ACCOUNT][region]
    endpoint = backend.endpoints[endpoint_name]
    config = backend.endpoint_configs[endpoint.endpoint_config_name]
    model = backend._models[config.production_variants[0]["ModelName"]]
    bucket, _, key = model.primary_container["ModelDataUrl"].removeprefix("s3://").partition("/")
    stored = s3_backends[ACCOUNT]["aws"].get_object(bucket, key)
    assert stored is not None, f"moto's S3 has no s3://{bucket}/{key}"
    archive = stored.value
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
        inference = InferenceModel.load(Path(tmp) / "artifacts" / "inference")
    answers, _ = inference.predict_records(json.loads(body)["inputs"])
    predictions = [{"prediction": a["prediction"], "confidence": a["confidence"]} for a in answers]
    return json.dumps({"predictions": predictions})


def _capture(endpoint_name: str, request: bytes | str, response: str, region: str) -> None:
    """Write the call where SageMaker data capture would, when the endpoint captures:
    `<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<time>-<id>.jsonl`, one JSON line
    with the input and the output."""
    endpoint = sagemaker_backends[ACCOUNT][region].endpoints[endpoint_name]
    config = endpoint.data_capture_config or {}
    if not config.get("EnableCapture"):
        return
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    line = json.dumps(
        {
            "captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                  "data": request if isinstance(request, str) else request.decode(),
                                  "encoding": "JSON"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": response, "encoding": "JSON"},
            },
            "eventMetadata": {"eventId": event_id, "inferenceTime": f"{now:%Y-%m-%dT%H:%M:%S}Z"},
            "eventVersion": "0",
        }
    )  # fmt: skip
    bucket, _, prefix = config["DestinationS3Uri"].removeprefix("s3://").partition("/")
    variant = endpoint.production_variants[0]["VariantName"]
    key = (
        f"{prefix.rstrip('/')}/{endpoint_name}/{variant}/{now:%Y/%m/%d/%H}/"
        f"{now:%M-%S}-{now.microsecond // 1000:03d}-{event_id}.jsonl"
    ).lstrip("/")
    # As on SageMaker, a capture that cannot be written never fails the invocation.
    with contextlib.suppress(MissingBucket):
        s3_backends[ACCOUNT]["aws"].put_object(bucket, key, line.encode() + b"\n")


def install(monkeypatch: Patcher, emulator: SageMakerEmulator) -> None:
    def update_endpoint(self: SageMakerModelBackend, endpoint_name: str, config_name: str) -> Any:
        if emulator.failing_update:
            raise JsonRESTError("ValidationException", emulator.failing_update)
        endpoint = self.endpoints[endpoint_name]
        config = self.describe_endpoint_config(config_name)
        if emulator.stuck_updates:
            endpoint.endpoint_status = "Updating"  # the old config keeps serving meanwhile
            return endpoint
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config["ProductionVariants"]
        )
        endpoint.data_capture_config = config["DataCaptureConfig"]
        endpoint.endpoint_status = "InService"
        return endpoint

    def update_endpoint_response(self: SageMakerResponse) -> str:
        emulator.calls["UpdateEndpoint"] += 1
        endpoint = update_endpoint(
            self.sagemaker_backend,
            self._get_param("EndpointName"),
            self._get_param("EndpointConfigName"),
        )
        return json.dumps({"EndpointArn": endpoint.arn})

    def add_tags(self: SageMakerModelBackend, arn: str, tags: list[dict[str, str]]) -> list:
        resource = self._get_resource_from_arn(arn)
        keys = {tag["Key"] for tag in tags}
        resource.tags = [t for t in resource.tags if t["Key"] not in keys] + list(tags)
        return resource.tags

    def invoke_endpoint(self: SageMakerRuntimeResponse) -> Any:
        emulator.calls["InvokeEndpoint"] += 1
        endpoint_name = self.path.split("/")[2]  # /endpoints/<name>/invocations
        body = _predict(endpoint_name, self.body, emulator.region)
        if emulator.captures:
            _capture(endpoint_name, self.body, body, emulator.region)
        return 200, {"Content-Type": "application/json"}, body

    monkeypatch.setattr(
        SageMakerResponse, "update_endpoint", update_endpoint_response, raising=False
    )
    monkeypatch.setattr(SageMakerModelBackend, "add_tags", add_tags)
    monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
    for action, method in (("CreateModel", "create_model"),
                           ("CreateEndpointConfig", "create_endpoint_config")):  # fmt: skip
        original = getattr(SageMakerResponse, method)
        monkeypatch.setattr(SageMakerResponse, method, _throttled(emulator, action, original))
