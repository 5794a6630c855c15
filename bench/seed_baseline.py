"""A seed-equivalent server, built from the seed README's description (not from its code):
the Flask development server, a RandomForestRegressor of 100 trees, a pandas DataFrame built
from each request's JSON, reindexed to the model's columns, and prometheus_client request
metrics with a /metrics app mounted beside the API.

One deliberate difference: the seed unpickles its model and column list at start; this baseline
fits the same kind of forest at start instead (no pickle is ever loaded here). Loading happens
once, so it does not change the per-request cost being compared.

    python -m bench.seed_baseline --port 5000
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import pandas as pd
from flask import Flask, jsonify, request
from prometheus_client import Counter, Histogram, make_wsgi_app
from sklearn.ensemble import RandomForestRegressor
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from service.model.dataset import FEATURES, TARGET, load_housing

TREES = 100
SEED = 42


def create_seed_app() -> Flask:
    data = load_housing()
    # Fitted on a DataFrame, as the seed's pickled model was: predict() then checks column names.
    model = RandomForestRegressor(n_estimators=TREES, random_state=SEED)
    model.fit(data[list(FEATURES)], data[TARGET])
    model_columns = list(FEATURES)
    requests_total = Counter("flask_http_request_total", "Requests", ["method", "status"])
    duration = Histogram("flask_http_request_duration_seconds", "Latency", ["method", "status"])

    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> Any:
        started = time.perf_counter()
        payload = request.get_json(force=True)
        # The seed's client double-encodes: its body is a JSON string holding the records.
        if isinstance(payload, str):
            payload = json.loads(payload)
        query = pd.DataFrame(payload).reindex(columns=model_columns, fill_value=0)
        prediction = [float(value) for value in model.predict(query)]
        response = jsonify({"prediction": prediction})
        duration.labels("POST", "200").observe(time.perf_counter() - started)
        requests_total.labels("POST", "200").inc()
        return response

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app()})  # type: ignore[method-assign]
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    # Flask's development server, threaded (its default since Flask 1.0), as the seed ran it.
    create_seed_app().run(host=args.host, port=args.port, debug=False)


if __name__ == "__main__":
    main()
