"""penguins_platform: train, register, deploy and monitor a penguin-species classifier.

This module stays empty of imports: the registered MLflow model ships `penguins_platform.ml`
inside this package name, and a serving process must not pay for the orchestrator.
"""
