"""The real azure.ai.ml.MLClient, end to end against the offline FakeAzureML transport."""

import json

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.constants._endpoint import EndpointInvokeFields
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from penguins_platform_tests.deploy.azure_fake import FakeAzureML, FakeCredential

ENDPOINT = "penguins"
MODEL_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mlschool/providers/Microsoft.MachineLearningServices/workspaces/main/models/penguins/versions/3"  # noqa: E501


@pytest.fixture(autouse=True)
def _isolate_invoke_headers(monkeypatch):
    """azure-ai-ml's invoke() writes into the module-level DEFAULT_HEADER dict, so an
    `azureml-model-deployment` header would leak into every later invoke in the process."""
    monkeypatch.setattr(
        EndpointInvokeFields, "DEFAULT_HEADER", {"Content-Type": "application/json"}
    )


@pytest.fixture
def fake():
    return FakeAzureML()


@pytest.fixture
def ml_client(fake):
    return MLClient(
        credential=FakeCredential(),
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group_name="mlschool",
        workspace_name="main",
        transport=fake,
    )


def _deployment(name: str) -> ManagedOnlineDeployment:
    # An MLflow model needs neither environment nor code_configuration.
    return ManagedOnlineDeployment(
        name=name,
        endpoint_name=ENDPOINT,
        model="azureml:penguins:3",
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )


@pytest.fixture
def endpoint(ml_client):
    return ml_client.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name=ENDPOINT, auth_mode="key")
    ).result()


@pytest.fixture
def deployment(ml_client, endpoint):
    return ml_client.online_deployments.begin_create_or_update(_deployment("penguins-3")).result()


def _set_traffic(ml_client, traffic):
    endpoint = ml_client.online_endpoints.get(ENDPOINT)
    endpoint.traffic = traffic
    return ml_client.online_endpoints.begin_create_or_update(endpoint).result()


def test_create_and_get_endpoint(ml_client, fake, endpoint):
    assert endpoint.provisioning_state.lower() == "succeeded"
    assert endpoint.scoring_uri == "https://penguins.westeurope.inference.ml.azure.com/score"
    # The create really was a long-running operation that the client polled.
    assert any("/mfeOperationsStatus/" in path for method, path in fake.calls if method == "GET")
    assert fake.endpoints[ENDPOINT]["properties"]["authMode"] == "Key"

    fetched = ml_client.online_endpoints.get(ENDPOINT)
    assert (fetched.name, fetched.auth_mode, fetched.location) == (ENDPOINT, "key", "westeurope")
    assert [e.name for e in ml_client.online_endpoints.list()] == [ENDPOINT]


def test_create_and_list_deployments(ml_client, fake, deployment):
    assert deployment.provisioning_state.lower() == "succeeded"
    assert deployment.model == MODEL_ID  # the client resolved azureml:penguins:3 to an ARM id
    stored = fake.deployments[ENDPOINT]["penguins-3"]
    assert stored["properties"]["model"] == MODEL_ID
    assert stored["properties"]["instanceType"] == "Standard_DS3_v2"
    assert stored["sku"]["capacity"] == 1

    listed = list(ml_client.online_deployments.list(endpoint_name=ENDPOINT))
    assert [d.name for d in listed] == ["penguins-3"]
    fetched = ml_client.online_deployments.get(name="penguins-3", endpoint_name=ENDPOINT)
    assert fetched.instance_type == "Standard_DS3_v2"


def test_update_traffic(ml_client, fake, deployment):
    assert ml_client.online_endpoints.get(ENDPOINT).traffic == {"penguins-3": 0}
    updated = _set_traffic(ml_client, {"penguins-3": 100})
    assert updated.traffic == {"penguins-3": 100}
    assert fake.endpoints[ENDPOINT]["properties"]["traffic"] == {"penguins-3": 100}
    assert ml_client.online_endpoints.get(ENDPOINT).traffic == {"penguins-3": 100}


def test_traffic_to_unknown_deployment_is_rejected(ml_client, endpoint):
    with pytest.raises(HttpResponseError, match="unknown deployments"):
        _set_traffic(ml_client, {"ghost": 100})


def test_get_keys(ml_client, fake, endpoint):
    keys = ml_client.online_endpoints.get_keys(ENDPOINT)
    assert keys.primary_key == fake.keys[ENDPOINT]["primaryKey"]
    assert keys.secondary_key == fake.keys[ENDPOINT]["secondaryKey"]
    assert ("POST", f"{fake.endpoints[ENDPOINT]['id']}/listKeys") in fake.calls


def test_invoke_honours_deployment_header_and_traffic(ml_client, fake, deployment, tmp_path):
    ml_client.online_deployments.begin_create_or_update(_deployment("penguins-4")).result()
    _set_traffic(ml_client, {"penguins-3": 100})
    request_file = tmp_path / "request.json"
    records = [{"island": "Biscoe", "culmen_length_mm": 48.6}, {"island": "Dream"}]
    request_file.write_text(json.dumps({"inputs": records}))

    answer = ml_client.online_endpoints.invoke(
        endpoint_name=ENDPOINT, request_file=str(request_file), deployment_name="penguins-4"
    )
    assert json.loads(answer) == {"predictions": [{"prediction": "Adelie", "confidence": 0.9}] * 2}
    assert fake.invocations[-1]["deployment"] == "penguins-4"
    assert fake.invocations[-1]["routed_by"] == "header"
    assert fake.invocations[-1]["request"] == {"inputs": records}

    # Without deployment_name the service routes by traffic -- but azure-ai-ml would resend the
    # header it leaked into DEFAULT_HEADER above, so drop it to see the traffic routing.
    EndpointInvokeFields.DEFAULT_HEADER.pop(EndpointInvokeFields.MODEL_DEPLOYMENT)
    fake.scorer = lambda name, body: (200, {"predictions": [{"prediction": name}]})
    answer = ml_client.online_endpoints.invoke(
        endpoint_name=ENDPOINT, request_file=str(request_file)
    )
    assert json.loads(answer) == {"predictions": [{"prediction": "penguins-3"}]}
    assert fake.invocations[-1]["routed_by"] == "traffic"


def test_invoke_surfaces_scoring_errors(ml_client, fake, deployment, tmp_path):
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({"inputs": [{}]}))
    fake.scorer = lambda name, body: (400, {"error": {"message": "missing column island"}})
    with pytest.raises(HttpResponseError, match="missing column island"):
        ml_client.online_endpoints.invoke(
            endpoint_name=ENDPOINT, request_file=str(request_file), deployment_name="penguins-3"
        )


def test_delete_deployment(ml_client, fake, deployment):
    ml_client.online_deployments.begin_delete(name="penguins-3", endpoint_name=ENDPOINT).result()
    assert fake.deployments[ENDPOINT] == {}
    assert ("DELETE", fake.endpoints[ENDPOINT]["id"] + "/deployments/penguins-3") in fake.calls
    assert list(ml_client.online_deployments.list(endpoint_name=ENDPOINT)) == []
    with pytest.raises(ResourceNotFoundError):
        ml_client.online_deployments.get(name="penguins-3", endpoint_name=ENDPOINT)


def test_delete_endpoint_removes_its_deployments(ml_client, fake, deployment):
    ml_client.online_endpoints.begin_delete(name=ENDPOINT).result()
    assert fake.endpoints == {} and fake.deployments == {}


def test_failed_provisioning_raises(ml_client, fake, endpoint):
    fake.fail_deployment_provisioning("penguins-3", "Container crashed: no module named keras")
    poller = ml_client.online_deployments.begin_create_or_update(_deployment("penguins-3"))
    with pytest.raises(HttpResponseError, match="no module named keras"):
        poller.result()
    assert fake.deployments[ENDPOINT]["penguins-3"]["properties"]["provisioningState"] == "Failed"
    # The fault is one-shot: a retry provisions normally.
    retried = ml_client.online_deployments.begin_create_or_update(_deployment("penguins-3"))
    assert retried.result().provisioning_state.lower() == "succeeded"


def test_get_missing_endpoint_raises(ml_client):
    with pytest.raises(ResourceNotFoundError, match="not found"):
        ml_client.online_endpoints.get("nope")
