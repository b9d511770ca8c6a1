"""A minimal Django project for the tests; docs/django.md shows its logging parts."""

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "django_project.urls"
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication, so that it can see the user.
    "logwell_handler.django.RequestContextMiddleware",
]

LOGGING = {
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
        # Django's own errors: unhandled exceptions in views, 4xx and 5xx responses.
        "django.request": {"handlers": ["logwell"], "level": "WARNING"},
        # Your code: logging.getLogger("shop.views") and so on.
        "shop": {"handlers": ["logwell"], "level": "INFO"},
    },
}
