"""The local endpoint: an HTTP server for a registered model, and the service that runs it.

`scoring.py` holds the request logic with no web framework in it, `app.py` wires it to
Starlette routes, `capture.py` appends every prediction to SQLite, and `service.py` starts,
finds, swaps and stops the server process. Nothing here imports Dagster, keras or
scikit-learn: the server process loads only numpy, Starlette and uvicorn, so it starts in
about a second and stays small.
"""
