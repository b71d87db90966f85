"""Monitoring: what production saw, its labels, and how it compares with training.

`production.py` gathers the newest captured rows of every target and judges capture health,
`labels.py` supplies the true species, and `report.py` compares a batch with the training
data in an Evidently report. The captured rows come through `penguins_platform.capture`.
Plain Python, no Dagster: the monitoring assets call these, never the other way round.
"""
