import pytest

from penguins_platform.ml import packaging, schema


def test_requirements_are_pinned_to_the_training_environment():
    from importlib.metadata import version

    pinned = dict(line.split("==") for line in packaging.pinned_requirements())
    assert pinned["keras"] == version("keras")
    assert pinned["scikit-learn"] == version("scikit-learn")
    assert "dagster" not in pinned


def test_signature_makes_every_feature_optional():
    inputs = packaging.signature().inputs.to_dict()
    assert [c["name"] for c in inputs] == list(schema.FEATURES)
    assert not any(c["required"] for c in inputs)


def test_staged_code_holds_the_model_package_and_not_the_orchestrator(tmp_path):
    root = packaging.stage_code(tmp_path)
    shipped = {str(p.relative_to(root)) for p in root.rglob("*.py")}
    assert "penguins_platform/ml/pyfunc.py" in shipped
    assert "penguins_platform/__init__.py" in shipped
    assert not any("assets" in p or "definitions" in p for p in shipped)


def test_failed_publication_removes_the_half_published_version(sqlite_store, model_name, tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sqlite_store.tracking_uri, registry_uri=sqlite_store.tracking_uri)
    client.create_registered_model(model_name)
    version = client.create_model_version(model_name, source=str(tmp_path)).version
    with pytest.raises(MlflowException):
        # "latest" is reserved, so MLflow refuses the alias after the tags are set.
        packaging.publish_version(client, model_name, version, {"a": "b"}, "latest")
    assert client.search_model_versions(f"name = '{model_name}'") == []
