import logging

from django.http import HttpRequest, HttpResponse

log = logging.getLogger("shop.views")


def hello(request: HttpRequest) -> HttpResponse:
    log.info("hello from the view")
    return HttpResponse("ok")


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("the view failed")
