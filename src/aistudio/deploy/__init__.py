"""Deployment: the metric contract, monitoring artefacts and offline checks of the k8s manifests."""
