"""HTTP routes, one blueprint per concern."""

from __future__ import annotations

from flask import Flask

from service.api.routes.feedback import feedback
from service.api.routes.health import health
from service.api.routes.meta import meta
from service.api.routes.predict import predict


def register_routes(app: Flask) -> None:
    for blueprint in (predict, feedback, health, meta):
        app.register_blueprint(blueprint)
