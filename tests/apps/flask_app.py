"""A Flask app for the tests; docs/flask.md shows its configuration."""

from logging.config import dictConfig

# Logging is configured before the app is created, as Flask's documentation says:
# Flask then adds no handler of its own.
dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "logwell": {
                # api_key and endpoint come from LOGWELL_API_KEY and LOGWELL_ENDPOINT.
                "class": "logwell_handler.LogwellHandler",
                "service": "shop",
            },
        },
        "root": {"level": "INFO", "handlers": ["logwell"]},
    }
)

from flask import Flask, request  # noqa: E402

import logwell_handler.flask  # noqa: E402

app = Flask(__name__)
logwell_handler.flask.init_app(app, user_id=lambda: request.headers.get("X-User"))


@app.get("/hello")
def hello() -> str:
    app.logger.info("hello from flask")
    return "ok"


@app.get("/boom")
def boom() -> str:
    raise ValueError("the view failed")
