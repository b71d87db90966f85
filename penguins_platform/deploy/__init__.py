"""Deployment targets behind one Protocol: the local endpoint, SageMaker and Azure ML.

`target.py` says what every target can do; `local.py`, `sagemaker.py` and `azure.py` do it;
`smoke.py` tries a deployment with real rows, the same way everywhere; `selection.py` says
which targets a deployment uses (`PENGUINS_TARGETS`). No Dagster here: the deployment assets
drive any target through `DeploymentTarget`, and the tests drive the real targets against a
real endpoint process, moto, and a fake of Azure ML's REST API.
"""
