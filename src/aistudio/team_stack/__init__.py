"""A local team stack on 127.0.0.1: PostgreSQL, an S3 endpoint and an MLflow server over both.

The same shape as the cluster (k8s/mlflow-deployment.yaml): `mlflow server` keeps runs and the
registry in PostgreSQL and proxies artifacts to a bucket, so clients need only the tracking URI;
DVC pushes data and models to a second bucket with the usual AWS variables. `make team-up` and the
integration tests start it through `TeamStack`, one code path for both.
"""
