"""Monitoring: what production saw, its labels, and how it compares with training.

`production.py` says what a batch of production rows looks like, and `sqlite_capture.py` and
`sagemaker_capture.py` read one from the local endpoint's store or from SageMaker data capture.
`labels.py` supplies the true species, `traffic.py` sends sample requests, and `report.py`
compares a batch with the training data in an Evidently report. Plain Python, no Dagster:
the monitoring assets call these, never the other way round.
"""
