"""A FastAPI app for the tests, served by uvicorn; docs/fastapi.md shows its setup."""

import asyncio
import logging

from fastapi import FastAPI

from logwell_handler.asgi import RequestContextMiddleware

# uvicorn.run(..., log_config=LOG_CONFIG), or --log-config with the same in a JSON file.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "logwell": {
            # api_key and endpoint come from LOGWELL_API_KEY and LOGWELL_ENDPOINT.
            "class": "logwell_handler.LogwellHandler",
            "service": "shop",
        },
    },
    "loggers": {
        "uvicorn.error": {"handlers": ["logwell"], "level": "INFO"},
        "uvicorn.access": {"handlers": ["logwell"], "level": "INFO", "propagate": False},
        "shop": {"handlers": ["logwell"], "level": "INFO"},
    },
}

app = FastAPI()
app.add_middleware(RequestContextMiddleware)

log = logging.getLogger("shop.api")


@app.get("/orders/{n}")
async def order(n: int) -> dict[str, int]:
    log.info("order %d received", n)
    await asyncio.sleep(0.05)  # other requests run meanwhile, in other tasks
    log.info("order %d done", n)
    return {"n": n}


@app.get("/sync/{n}")
def sync_order(n: int) -> dict[str, int]:
    log.info("sync %d", n)  # runs in Starlette's thread pool
    return {"n": n}
