"""The machine-learning core: plain Python, no Dagster.

The registered MLflow model loads this package at serving time, so nothing here may
import the orchestrator. Heavy libraries are imported inside the functions that use them.
"""
