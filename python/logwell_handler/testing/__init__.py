"""A local Logwell-compatible receiver for tests and demos.

It listens on 127.0.0.1 (a free port), checks each request the way Logwell's server does
(media type, API key, rate limit, JSON, batch size, each entry, what the database refuses),
keeps what it accepted, and can be told to misbehave. It serves both of Logwell's routes:
``/v1/ingest`` (the simple API, kept in ``entries``) and ``/v1/logs`` (OTLP/HTTP JSON,
normalised as the server does and kept in ``log_records``). docs/testing.md lists where it
follows the real server::

    from logwell_handler.testing import LogwellReceiver

    with LogwellReceiver() as receiver:
        handler = LogwellHandler(api_key=receiver.api_key, endpoint=receiver.endpoint)
        ...
        receiver.fail_next(2, status=500)     # the next two requests answer 500
        receiver.rate_limit_per_minute = 600  # the server's default: 600 at once, then 10/s
        receiver.max_body_bytes = 65536       # larger bodies get 413
        receiver.refuse_batch_if = lambda e: "poison" in e["message"]   # whole batch 400
        receiver.fail_batch_if = lambda e: "poison" in e["message"]     # whole batch 500
        receiver.wait_for(10)                 # until 10 entries were accepted
        receiver.entries                      # the accepted entries, as dicts
        receiver.log_records                  # the accepted OTLP records, normalised
        receiver.otlp_reply = "collector"     # answer /v1/logs as a collector does

``LogwellReceiver(ssl_context=ctx)`` serves https with that context's certificate.

With pytest, the ``logwell_receiver`` fixture gives a started receiver.
"""

from __future__ import annotations

from ._faults import Fault
from ._logwell import LEVELS as LEVELS
from ._logwell import MAX_BATCH as MAX_BATCH
from ._logwell import validate_entry as validate_entry
from ._otlp import OtlpValidationError as OtlpValidationError
from ._otlp import normalize_otlp
from ._receiver import LogwellReceiver, ReceivedRequest

# LEVELS, MAX_BATCH, validate_entry and OtlpValidationError are re-exported too ("X as X"),
# outside __all__ as before: they were public names of the one module this package was.
__all__ = ["Fault", "LogwellReceiver", "ReceivedRequest", "normalize_otlp"]
