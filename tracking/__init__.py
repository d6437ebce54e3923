"""Runs and the model registry (MLflow), used by training and serving alike.

`tracking.registry` is the one module of the project that imports mlflow.
"""
