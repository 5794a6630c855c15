"""The HTTP API: the Flask app factory, its per-app state, routes, request parsing, errors,
auth, prediction ids and the OpenAPI document. Builds on the model and telemetry layers."""
