"""Cloud deployment targets, as plain SDK code: boto3 for SageMaker, azure-ai-ml for Azure ML.

No Dagster here: the assets wire these to resources and checks, and the tests drive them
against emulators at the HTTP layer.
"""
