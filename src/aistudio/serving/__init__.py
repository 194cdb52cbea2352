"""The model server: app factory, engine and batcher, routes, auth, metrics, drift and A/B routing."""
