"""Captured predictions: what an endpoint records of each, and how monitoring reads them back.

`contract.py` names the columns and the `CaptureSource` every store answers through;
`validation.py` turns what a store held into the production table; `sqlite.py` is the local
endpoint's store and `sagemaker.py` SageMaker's data capture in S3. Serving writes through
this package, deployment targets point at their store with it, and monitoring reads with it,
so none of those three imports another for the capture. Plain Python, no Dagster.
"""
