"""OpenTelemetry for one process: export plan, providers, exporters, the Flask instrumentation
and the ML meters. Builds on the model layer; knows nothing of the HTTP API."""
