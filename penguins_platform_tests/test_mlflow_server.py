"""The lineage against a real `mlflow server` process, as a team would run it."""

import dagster as dg

from penguins_platform.tracking.contract import CHAMPION_ALIAS, DAGSTER_RUN_TAG
from penguins_platform_tests.conftest import (
    QUICK_TRAINING,
    latest_metadata,
    model_versions,
    tracking_resource,
)


def test_lineage_registers_on_a_real_tracking_server(mlflow_server, model_name, train_lineage):
    from mlflow.tracking import MlflowClient

    resource = tracking_resource(mlflow_server, model_name)
    with dg.instance_for_test() as instance:
        result = train_lineage(instance, resource, **QUICK_TRAINING)
        assert result.success
        links = latest_metadata(instance, "registered_model_version")
    assert model_versions(mlflow_server.tracking_uri, model_name) == ["1"]
    client = MlflowClient(mlflow_server.tracking_uri, registry_uri=mlflow_server.tracking_uri)
    champion = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    assert str(champion.version) == "1"
    assert champion.tags[DAGSTER_RUN_TAG] == result.run_id
    assert links["mlflow_model_version"] == (
        f"{mlflow_server.tracking_uri}/#/models/{model_name}/versions/1"
    )
    assert links["mlflow_run"].startswith(f"{mlflow_server.tracking_uri}/#/experiments/")


def test_registered_model_loads_back_through_the_server(mlflow_server, model_name, train_lineage):
    import mlflow.pyfunc
    import pandas as pd

    with dg.instance_for_test() as instance:
        resource = tracking_resource(mlflow_server, model_name)
        assert train_lineage(instance, resource, **QUICK_TRAINING).success
    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@{CHAMPION_ALIAS}")
    answer = model.predict(pd.DataFrame([{"island": "Torgersen", "culmen_length_mm": 39.1}]))
    assert answer["prediction"].iloc[0] in {"Adelie", "Chinstrap", "Gentoo"}
