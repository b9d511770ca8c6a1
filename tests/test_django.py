"""Django with our LOGGING entry and middleware, driven by Django's test client."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from logwell_handler.testing import LogwellReceiver

from conftest import line_of, receiver_env, run_python

TESTS = Path(__file__).parent
VIEWS = TESTS / "django_project" / "views.py"

DRIVER = textwrap.dedent(
    f"""
    import json, os, sys
    sys.path.insert(0, {str(TESTS)!r})
    os.environ["DJANGO_SETTINGS_MODULE"] = "django_project.settings"
    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("ada")
    signed_in = Client(raise_request_exception=False)
    signed_in.force_login(user)
    hello = signed_in.get("/hello/", HTTP_X_REQUEST_ID="req-hello")
    boom = signed_in.get("/boom/", HTTP_X_REQUEST_ID="req-boom")
    anonymous = Client().get("/hello/")
    print(json.dumps({{
        "statuses": [hello.status_code, boom.status_code, anonymous.status_code],
        "anonymous_id": anonymous["X-Request-ID"],
        "user_id": str(user.pk),
    }}))
    """
)


def test_view_logs_and_django_request_errors_carry_the_request(
    logwell_receiver: LogwellReceiver,
) -> None:
    env = receiver_env(logwell_receiver)
    proc, _ = run_python(DRIVER, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["statuses"] == [200, 500, 200]
    assert logwell_receiver.wait_for(3, timeout=10)

    views = [e for e in logwell_receiver.entries if e["message"] == "hello from the view"]
    signed_in = next(e for e in views if e["metadata"]["request_id"] == "req-hello")
    assert signed_in["metadata"] == {
        "request_id": "req-hello",
        "method": "GET",
        "path": "/hello/",
        "user_id": result["user_id"],
        "logger": "shop.views",
    }
    assert signed_in["service"] == "shop"
    assert signed_in["sourceFile"].endswith("django_project/views.py")
    assert signed_in["lineNumber"] == line_of(VIEWS, 'log.info("hello from the view")')
    anonymous = next(e for e in views if e is not signed_in)
    assert anonymous["metadata"]["request_id"] == result["anonymous_id"]
    assert "user_id" not in anonymous["metadata"]

    (error,) = [e for e in logwell_receiver.entries if e["level"] == "error"]
    assert error["message"] == "Internal Server Error: /boom/"
    assert error["metadata"]["logger"] == "django.request"
    assert error["metadata"]["request_id"] == "req-boom"
    assert error["metadata"]["user_id"] == result["user_id"]
    exception = error["metadata"]["exception"]
    assert exception["type"] == "ValueError"
    assert exception["message"] == "the view failed"
    raise_line = line_of(VIEWS, "raise ValueError")
    assert f'views.py", line {raise_line}, in boom' in exception["stacktrace"]
