"""OTLP/HTTP JSON as Logwell's server reads it on /v1/logs: an export's log records,
flattened and normalised by :func:`normalize_otlp`."""

from __future__ import annotations

import json
from typing import Any


class OtlpValidationError(ValueError):
    """The request as a whole is not an OTLP export the server takes (400)."""


def _any_value(value: Any, depth: int = 0) -> Any:
    """An OTLP ``AnyValue`` as a Python value, as the server reads it."""
    if depth > 32 or not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        raw = value["intValue"]
        return int(raw) if isinstance(raw, (int, str)) and str(raw).lstrip("-").isdigit() else None
    if "doubleValue" in value:
        return value["doubleValue"]
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [_any_value(v, depth + 1) for v in items]
    if "kvlistValue" in value:
        return _key_values((value["kvlistValue"] or {}).get("values"), depth + 1)
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _key_values(values: Any, depth: int = 0) -> dict[str, Any]:
    if not isinstance(values, list):
        return {}
    out: dict[str, Any] = {}
    for kv in values:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str) and kv["key"]:
            out[kv["key"]] = _any_value(kv.get("value"), depth + 1)
    return out


def _level_of(severity: Any) -> str:
    if not isinstance(severity, int) or severity <= 0:
        return "info"
    for top, level in ((8, "debug"), (12, "info"), (16, "warn"), (20, "error")):
        if severity <= top:
            return level
    return "fatal"


def normalize_otlp(payload: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The log records of an OTLP export, flattened as Logwell's server does: each with
    its ``resource`` and ``attributes`` as dicts, its ``scope`` name, ``message``,
    ``level`` and the record's own fields. Returns the records and the reasons for any
    refused one. Raises OtlpValidationError for a request the server refuses whole."""
    if not isinstance(payload, dict):
        raise OtlpValidationError("Request body must be an object.")
    resource_logs = payload.get("resourceLogs")
    if not isinstance(resource_logs, list):
        raise OtlpValidationError("resourceLogs must be an array.")
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    for resource_log in resource_logs:
        if not isinstance(resource_log, dict):
            continue
        resource = _key_values((resource_log.get("resource") or {}).get("attributes"))
        for scope_log in resource_log.get("scopeLogs") or []:
            if not isinstance(scope_log, dict):
                continue
            scope = scope_log.get("scope") or {}
            for record in scope_log.get("logRecords") or []:
                if not isinstance(record, dict):
                    errors.append("Log record rejected: must be an object.")
                    continue
                attributes = _key_values(record.get("attributes"))
                body = _any_value(record.get("body"))
                severity = record.get("severityNumber")
                records.append(
                    {
                        **record,
                        "resource": resource,
                        "scope": scope.get("name"),
                        "attributes": attributes,
                        "body": body,
                        "message": body if isinstance(body, str) else json.dumps(body),
                        "level": _level_of(severity),
                    }
                )
    return records, errors
