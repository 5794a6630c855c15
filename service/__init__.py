"""Monitoring ML API: a scikit-learn housing model served over HTTP with OpenTelemetry."""
