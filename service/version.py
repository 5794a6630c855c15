"""The installed version of this distribution (model cache names, model versions, the OpenAPI
document and the telemetry resource all carry it)."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "monitoring-ml-api"


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
