"""Flask configured with dictConfig before the app exists, driven by its test client."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from logwell_handler.testing import LogwellReceiver

from conftest import line_of, receiver_env, run_python

APPS = Path(__file__).parent / "apps"
APP = APPS / "flask_app.py"

DRIVER = textwrap.dedent(
    f"""
    import json, sys
    sys.path.insert(0, {str(APPS)!r})
    from flask_app import app

    client = app.test_client()
    hello = client.get("/hello", headers={{"X-Request-ID": "req-hello", "X-User": "u-7"}})
    boom = client.get("/boom", headers={{"X-Request-ID": "req-boom"}})
    anonymous = client.get("/hello")
    print(json.dumps({{
        "statuses": [hello.status_code, boom.status_code, anonymous.status_code],
        "ids": [hello.headers["X-Request-ID"], anonymous.headers["X-Request-ID"]],
    }}))
    """
)


def test_app_logs_and_flask_errors_carry_the_request(logwell_receiver: LogwellReceiver) -> None:
    env = receiver_env(logwell_receiver)
    proc, _ = run_python(DRIVER, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["statuses"] == [200, 500, 200]
    assert result["ids"][0] == "req-hello"
    assert logwell_receiver.wait_for(3, timeout=10)

    hellos = [e for e in logwell_receiver.entries if e["message"] == "hello from flask"]
    signed_in = next(e for e in hellos if e["metadata"]["request_id"] == "req-hello")
    assert signed_in["metadata"] == {
        "request_id": "req-hello",
        "method": "GET",
        "path": "/hello",
        "user_id": "u-7",
        "logger": "flask_app",
    }
    assert signed_in["service"] == "shop"
    assert signed_in["sourceFile"].endswith("apps/flask_app.py")
    assert signed_in["lineNumber"] == line_of(APP, 'app.logger.info("hello from flask")')
    anonymous = next(e for e in hellos if e is not signed_in)
    assert anonymous["metadata"]["request_id"] == result["ids"][1]
    assert "user_id" not in anonymous["metadata"]

    (error,) = [e for e in logwell_receiver.entries if e["level"] == "error"]
    assert error["message"] == "Exception on /boom [GET]"
    assert error["metadata"]["request_id"] == "req-boom"
    exception = error["metadata"]["exception"]
    assert exception["type"] == "ValueError"
    assert (
        f'flask_app.py", line {line_of(APP, "raise ValueError")}, in boom'
        in exception["stacktrace"]
    )
