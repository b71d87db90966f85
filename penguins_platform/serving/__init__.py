"""The local endpoint: an HTTP server for a registered model, and the service that runs it.

Nothing here imports Dagster, keras or scikit-learn: the server process loads only numpy,
Starlette and uvicorn, so it starts in about a second and stays small.
"""
