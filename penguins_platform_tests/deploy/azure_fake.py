"""Offline, stateful fake of the Azure Machine Learning REST API, plugged in at the HTTP layer.

The real ``azure.ai.ml.MLClient`` runs unchanged against it: pass ``transport=FakeAzureML()``
to ``MLClient``. MLClient forwards that kwarg to every ARM service client *and* to its
general-purpose ``HttpPipeline`` (the one ``online_endpoints.invoke`` posts to the scoring
URI with), so management calls, LRO polling and scoring requests all land in ``send`` below.

Only what the online-endpoint workflow needs is modelled: the workspace GET (location lookup),
online endpoints and deployments (PUT/GET/list/DELETE as ARM long-running operations),
``listKeys``/``token``, and the ``https://<endpoint>.<region>.inference.ml.azure.com/score`` URI.
"""

from __future__ import annotations

import io
import json
import random
import re
import threading
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.transport import HttpTransport, RequestsTransportResponse
from azure.core.rest import HttpRequest

# The response class azure-core's own RequestsTransport returns for azure.core.rest requests;
# reusing it keeps read()/iter_bytes()/json() behaving exactly as in production.
from azure.core.rest._requests_basic import RestRequestsTransportResponse

FAR_FUTURE = 4_102_444_800  # 2100-01-01T00:00:00Z: the token never needs refreshing.

Scorer = Callable[[str, Any], tuple[int, Any]]
Reply = tuple[int, Any, dict[str, str]]

_WS = (
    r"(?P<ws_id>/subscriptions/(?P<sub>[^/]+)/resourceGroups/[^/]+"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+))"
)
_EP = _WS + r"/onlineEndpoints/(?P<ep>[^/]+)"
_DEP = _EP + r"/deployments/(?P<dep>[^/]+)"
_OPS = r"/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+"
# Server-side defaults the service fills in for managed deployments; the SDK's
# ManagedOnlineDeployment._from_rest_object dereferences scaleSettings unconditionally.
_PROBE: dict[str, Any] = {"initialDelay": "PT10S", "period": "PT10S", "timeout": "PT2S"}
_PROBE.update(successThreshold=1, failureThreshold=30)
_DEPLOYMENT_DEFAULTS = {
    "endpointComputeType": "Managed",
    "scaleSettings": {"scaleType": "Default"},
    "requestSettings": {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1},
    "livenessProbe": _PROBE,
    "readinessProbe": _PROBE,
    "appInsightsEnabled": False,
    "egressPublicNetworkAccess": "Enabled",
}
_SCORING_HOST = re.compile(r"^(?P<ep>[^.]+)\.(?P<loc>[^.]+)\.inference\.ml\.azure\.com$", re.I)


class FakeCredential:
    """TokenCredential (and SupportsTokenInfo, which azure-core >= 1.31 prefers) that never
    talks to Entra ID."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", FAR_FUTURE)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo("fake-token", FAR_FUTURE)


def default_scorer(deployment_name: str, request_json: Any) -> tuple[int, Any]:
    """Answer like an MLflow scoring server would: one prediction per input record."""
    body = request_json if isinstance(request_json, dict) else {}
    split = body.get("dataframe_split")
    records = next(
        (body[k] for k in ("inputs", "instances", "dataframe_records") if k in body),
        split.get("data") if isinstance(split, dict) else None,
    )
    if not isinstance(records, list):
        return 400, {"error_code": "BAD_REQUEST", "message": "expected {'inputs': [...]}"}
    return 200, {"predictions": [{"prediction": "Adelie", "confidence": 0.9} for _ in records]}


def _content(request: Any) -> Any:
    """Request body of an azure.core.rest request (``content``) or a legacy one (``body``)."""
    return getattr(request, "content", None) or getattr(request, "body", None)


def _error(status: int, code: str, message: str) -> Reply:
    """ARM error envelope; azure-core turns it into HttpResponseError/ResourceNotFoundError."""
    return status, {"error": {"code": code, "message": message}}, {}


class FakeAzureML(HttpTransport):
    """Stateful in-memory Azure ML workspace, answering as an azure-core HTTP transport.

    State (plain dicts of the ARM JSON, for assertions): ``endpoints[name]``,
    ``deployments[endpoint][name]``, ``keys[endpoint]``. ``calls`` lists every (method, path);
    ``invocations`` lists every scoring request with the deployment that served it.
    Long-running operations report ``InProgress`` for ``lro_polls`` polls before finishing;
    ``sleep`` is a no-op so polling never waits.
    """

    def __init__(self, location: str = "westeurope", lro_polls: int = 1) -> None:
        self.location = location
        self.lro_polls = lro_polls
        self.endpoints: dict[str, dict] = {}
        self.deployments: dict[str, dict[str, dict]] = {}
        self.keys: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        self.invocations: list[dict[str, Any]] = []
        self.scorer: Scorer = default_scorer
        self._failures: dict[str, str] = {}
        self._operations: dict[str, dict] = {}
        self._rng = random.Random(0)  # traffic splits are weighted but reproducible
        self._lock = threading.RLock()  # LROPoller polls from a background thread
        self._routes: list[tuple[str, re.Pattern, Callable[..., Reply]]] = [
            (m, re.compile(f"^{p}$", re.I), h)
            for m, p, h in [
                ("GET", _WS, self._get_workspace),
                ("GET", _WS + "/onlineEndpoints", self._list_endpoints),
                ("GET", _EP, self._get_endpoint),
                ("PUT", _EP, self._put_endpoint),
                ("DELETE", _EP, self._delete_endpoint),
                ("POST", _EP + "/listKeys", self._list_keys),
                ("POST", _EP + "/token", self._get_token),
                ("GET", _EP + "/deployments", self._list_deployments),
                ("GET", _DEP, self._get_deployment),
                ("PUT", _DEP, self._put_deployment),
                ("DELETE", _DEP, self._delete_deployment),
                ("GET", _OPS + r"/mfeOperationsStatus/(?P<op>[^/]+)", self._operation_status),
                ("GET", _OPS + r"/mfeOperationResults/(?P<op>[^/]+)", self._operation_result),
            ]
        ]

    # -- test controls -------------------------------------------------------------------
    def fail_deployment_provisioning(self, name: str, message: str | None = None) -> None:
        """Make the next create/update of deployment ``name`` end in provisioningState Failed."""
        self._failures[name] = message or f"Deployment '{name}' failed: container crashed."

    # -- HttpTransport -------------------------------------------------------------------
    def send(self, request: Any, **kwargs: Any) -> Any:
        url = urlsplit(request.url)
        path = unquote(url.path).rstrip("/")
        with self._lock:
            self.calls.append((request.method, path))
            scoring = _SCORING_HOST.match(url.hostname or "")
            if scoring and path == "/score" and request.method == "POST":
                status, body, headers = self._score(request, scoring["ep"])
            else:
                status, body, headers = self._dispatch(request, path)
        return self._response(request, status, body, headers, stream=kwargs.get("stream", False))

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __exit__(self, *args: Any) -> None:
        pass

    def sleep(self, duration: float) -> None:
        """LRO polling and retries sleep through the transport: skip the wait."""

    # -- plumbing ------------------------------------------------------------------------
    def _dispatch(self, request: Any, path: str) -> Reply:
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and method == request.method:
                body = json.loads(_content(request) or "null")
                base = urlsplit(request.url)._replace(path="", query="").geturl()
                return handler(match, body, base)
        # 501 rather than 404 so an unfaked call fails loudly instead of reading as "missing".
        return _error(501, "NotFaked", f"{request.method} {path} is not faked")

    @staticmethod
    def _response(request: Any, status: int, body: Any, headers: dict, stream: bool) -> Any:
        """Build the same response objects azure-core's RequestsTransport would."""
        raw = requests.Response()
        raw.status_code, raw.reason, raw.url = status, HTTPStatus(status).phrase, request.url
        is_text = isinstance(body, str)
        content = b"" if body is None else (body if is_text else json.dumps(body)).encode()
        raw.headers["Content-Type"] = "text/plain" if is_text else "application/json"
        raw.headers["x-ms-request-id"] = str(uuid.uuid4())
        raw.headers.update(headers)
        raw.raw = io.BytesIO(content)
        if not isinstance(request, HttpRequest):  # legacy azure.core.pipeline.transport request
            return RequestsTransportResponse(request, raw)
        response = RestRequestsTransportResponse(request=request, internal_response=raw)
        if not stream:
            response.read()
        return response

    def _start_operation(self, base: str, sub: str, kind: str, finish: Callable[[], Any]) -> str:
        """Register an LRO; ``finish`` applies its effect and returns an error message or None."""
        op_id = str(uuid.uuid4())
        self._operations[op_id] = {"polls": 0, "finish": finish, "status": "InProgress"}
        return (
            f"{base}/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/"
            f"{self.location}/{kind}/{op_id}?api-version=2023-04-01-preview"
        )

    def _advance(self, op_id: str) -> dict | None:
        op = self._operations.get(op_id)
        if op and op["status"] == "InProgress":
            op["polls"] += 1
            if op["polls"] > self.lro_polls:
                op["error"] = op["finish"]()
                op["status"] = "Failed" if op["error"] else "Succeeded"
        return op

    def _operation_status(self, match: re.Match, body: Any, base: str) -> Reply:
        op = self._advance(match["op"])
        if op is None:
            return _error(404, "UserError", "Operation not found.")
        status: dict[str, Any] = {"id": match.string, "name": match["op"], "status": op["status"]}
        if op["status"] == "Failed":
            status["error"] = {"code": "DeploymentFailed", "message": op["error"]}
        return 200, status, {}

    def _operation_result(self, match: re.Match, body: Any, base: str) -> Reply:
        op = self._advance(match["op"])
        if op is None or op["status"] == "InProgress":
            return 202, None, {"Location": base + match.string}
        if op["status"] == "Failed":
            return _error(400, "UserError", op["error"])
        return 200, None, {}

    def _missing(self, match: re.Match) -> Reply | None:
        """404 unless the endpoint (and deployment, if in the path) exists."""
        endpoint, deployment = match["ep"], match.groupdict().get("dep")
        if endpoint not in self.endpoints:
            return _error(404, "UserError", f"Online endpoint '{endpoint}' not found.")
        if deployment is not None and deployment not in self.deployments[endpoint]:
            return _error(404, "UserError", f"Deployment '{deployment}' not found.")
        return None

    # -- workspace -----------------------------------------------------------------------
    def _get_workspace(self, match: re.Match, body: Any, base: str) -> Reply:
        loc, ws_id = self.location, match["ws_id"]
        props = {
            "friendlyName": match["ws"],
            "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, ws_id)),
            "provisioningState": "Succeeded",
            "discoveryUrl": f"https://{loc}.api.azureml.ms/discovery",
            "mlFlowTrackingUri": f"azureml://{loc}.api.azureml.ms/mlflow/v1.0{ws_id}",
        }
        workspace = {"id": ws_id, "name": match["ws"], "location": loc, "kind": "Default"}
        workspace.update(type="Microsoft.MachineLearningServices/workspaces", properties=props)
        return 200, workspace, {}

    # -- online endpoints ----------------------------------------------------------------
    def _list_endpoints(self, match: re.Match, body: Any, base: str) -> Reply:
        return 200, {"value": list(self.endpoints.values())}, {}

    def _get_endpoint(self, match: re.Match, body: Any, base: str) -> Reply:
        return self._missing(match) or (200, self.endpoints[match["ep"]], {})

    def _put_endpoint(self, match: re.Match, body: dict, base: str) -> Reply:
        name, old = match["ep"], self.endpoints.get(match["ep"])
        props = {**(old or {}).get("properties", {}), **body.get("properties", {})}
        traffic = props.get("traffic") or {}
        unknown = set(traffic) - set(self.deployments.get(name, {}))
        if unknown:
            return _error(400, "BadArgument", f"Traffic refers to unknown deployments {unknown}.")
        if sum(traffic.values()) not in (0, 100):
            return _error(400, "BadArgument", "Traffic values must sum to 100 (or 0).")
        host = f"https://{name}.{self.location}.inference.ml.azure.com"
        props.update(
            traffic=traffic,
            mirrorTraffic=props.get("mirrorTraffic") or {},
            scoringUri=f"{host}/score",
            swaggerUri=f"{host}/swagger.json",
            provisioningState="Updating" if old else "Creating",
        )
        resource = {**body, "id": match.string, "name": name, "location": self.location}
        resource.update(type="Microsoft.MachineLearningServices/workspaces/onlineEndpoints")
        resource["properties"] = props
        self.endpoints[name] = resource
        self.deployments.setdefault(name, {})
        self.keys.setdefault(
            name, {"primaryKey": uuid.uuid4().hex, "secondaryKey": uuid.uuid4().hex}
        )

        def finish() -> None:
            props["provisioningState"] = "Succeeded"

        op_url = self._start_operation(base, match["sub"], "mfeOperationsStatus", finish)
        return (200 if old else 201), resource, {"Azure-AsyncOperation": op_url}

    def _delete_endpoint(self, match: re.Match, body: Any, base: str) -> Reply:
        name = match["ep"]
        if name not in self.endpoints:
            return 204, None, {}  # ARM DELETE of a missing resource is a no-op
        self.endpoints[name]["properties"]["provisioningState"] = "Deleting"

        def finish() -> None:
            self.endpoints.pop(name, None)
            self.deployments.pop(name, None)
            self.keys.pop(name, None)

        op_url = self._start_operation(base, match["sub"], "mfeOperationResults", finish)
        return 202, None, {"Location": op_url}

    def _list_keys(self, match: re.Match, body: Any, base: str) -> Reply:
        return self._missing(match) or (200, self.keys[match["ep"]], {})

    def _get_token(self, match: re.Match, body: Any, base: str) -> Reply:
        token: dict[str, Any] = {"accessToken": "fake-aml-token", "tokenType": "Bearer"}
        token.update(expiryTimeUtc=FAR_FUTURE, refreshAfterTimeUtc=FAR_FUTURE)
        return self._missing(match) or (200, token, {})

    # -- online deployments --------------------------------------------------------------
    def _list_deployments(self, match: re.Match, body: Any, base: str) -> Reply:
        missing = self._missing(match)
        return missing or (200, {"value": list(self.deployments[match["ep"]].values())}, {})

    def _get_deployment(self, match: re.Match, body: Any, base: str) -> Reply:
        return self._missing(match) or (200, self.deployments[match["ep"]][match["dep"]], {})

    def _put_deployment(self, match: re.Match, body: dict, base: str) -> Reply:
        endpoint, name = match["ep"], match["dep"]
        if endpoint not in self.endpoints:
            return _error(404, "UserError", f"Online endpoint '{endpoint}' not found.")
        old = self.deployments[endpoint].get(name)
        props = {**_DEPLOYMENT_DEFAULTS, **body.get("properties", {})}
        props["provisioningState"] = "Updating" if old else "Creating"
        resource = {"sku": {"name": "Default", "capacity": 1}, **body, "id": match.string}
        resource.update(name=name, location=self.location, kind=body.get("kind", "Managed"))
        resource["type"] = (
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
        )
        resource["properties"] = props
        self.deployments[endpoint][name] = resource
        failure = self._failures.pop(name, None)

        def finish() -> str | None:
            props["provisioningState"] = "Failed" if failure else "Succeeded"
            return failure

        op_url = self._start_operation(base, match["sub"], "mfeOperationsStatus", finish)
        return (200 if old else 201), resource, {"Azure-AsyncOperation": op_url}

    def _delete_deployment(self, match: re.Match, body: Any, base: str) -> Reply:
        endpoint, name = match["ep"], match["dep"]
        if endpoint not in self.endpoints or name not in self.deployments[endpoint]:
            return 204, None, {}
        if self.endpoints[endpoint]["properties"]["traffic"].get(name):
            return _error(400, "BadArgument", f"Deployment '{name}' still receives traffic.")
        self.deployments[endpoint][name]["properties"]["provisioningState"] = "Deleting"

        def finish() -> None:
            self.deployments.get(endpoint, {}).pop(name, None)

        op_url = self._start_operation(base, match["sub"], "mfeOperationResults", finish)
        return 202, None, {"Location": op_url}

    # -- scoring -------------------------------------------------------------------------
    def _score(self, request: Any, endpoint: str) -> Reply:
        """Authenticate with an endpoint key, route by header or traffic, call ``scorer``."""
        if endpoint not in self.endpoints:
            return 404, "Endpoint not found", {}
        props = self.endpoints[endpoint]["properties"]
        accepted = {"key": set(self.keys[endpoint].values()), "amltoken": {"fake-aml-token"}}
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in accepted.get(props["authMode"].lower(), {"fake-token"}):
            return 401, "Unauthorized: invalid key or token", {}
        target = request.headers.get("azureml-model-deployment")
        routed_by = "header" if target else "traffic"
        if not target:
            if not props["traffic"]:
                return 404, "No valid deployments to route to.", {}
            names, weights = zip(*props["traffic"].items(), strict=True)
            target = self._rng.choices(names, weights=weights)[0]
        deployment = self.deployments[endpoint].get(target)
        if deployment is None or deployment["properties"]["provisioningState"] != "Succeeded":
            return 404, f"Deployment '{target}' not found or not ready.", {}
        request_json = json.loads(_content(request) or "null")
        status, payload = self.scorer(target, request_json)
        record = {"endpoint": endpoint, "deployment": target, "routed_by": routed_by}
        self.invocations.append({**record, "request": request_json, "status": status})
        return status, payload, {"azureml-model-deployment": target}
