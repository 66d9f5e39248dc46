"""Argo CD's published contract as validators: the API's swagger (``swagger.json``) and the
Application CRD (``application-crd.yaml``), both read from ``../shared/specs/argocd`` at
test time and never copied into the project.

Used by the emulator's tests (every answer it gives must fit) and by the adapter's
contract tests (every request it sends must fit)::

    from tests.argocd_contract import check_request, check_response, crd_validator

    check_request("POST", "/api/v1/applications/{name}/sync", body)
    check_response("GET", "/api/v1/applications/payments-prod", 200, answer)
    assert not problems(crd_validator(), application)

Validators are *strict* by default: an object may only carry the properties the schema
names (where the schema itself does not allow more), because Argo CD's gateway rejects
unknown request fields and the Kubernetes API server prunes unknown Application fields. So
``{"dry_run": true}`` or a misspelt ``deployStartAt`` fail here, although the published
schemas alone would let them through. Formats are checked: ``date-time`` (RFC 3339),
``int64``/``int32`` (range, or a decimal string where the swagger says ``type: string``)
and ``byte`` (base64); other formats are ignored.

Every function skips the calling test, with the reason, when the specs are absent.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs" / "argocd"
SWAGGER_PATH = SPECS / "swagger.json"
CRD_PATH = SPECS / "application-crd.yaml"
SWAGGER_URI = "urn:argocd:swagger"
CRD_VERSION = "v1alpha1"
METHODS = ("get", "put", "post", "delete", "patch")

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")
_DECIMAL = re.compile(r"^-?\d+\Z")


def specs_present() -> bool:
    """True when ``../shared/specs/argocd`` holds the swagger and the CRD."""
    return SWAGGER_PATH.is_file() and CRD_PATH.is_file()


def require_specs() -> None:
    """Skip the calling test when the specs are absent."""
    if not specs_present():
        pytest.skip(
            f"Argo CD's API specs are not at {SPECS} (../shared/specs is absent); "
            "contract checks need them"
        )


# --- formats ------------------------------------------------------------------------------

FORMATS = FormatChecker(formats=())


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


def _integer(bits: int) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if isinstance(value, bool):
            return True  # the type keyword reports it
        if isinstance(value, str):
            if not _DECIMAL.match(value):
                return False
            number = int(value)
        elif isinstance(value, int):
            number = value
        else:
            return True
        return bool(-(2 ** (bits - 1)) <= number < 2 ** (bits - 1))

    return check


def _byte(value: object) -> bool:
    if isinstance(value, str):
        base64.b64decode(value, validate=True)
    return True


FORMATS.checks("date-time", raises=ValueError)(_date_time)
FORMATS.checks("int64")(_integer(64))
FORMATS.checks("int32")(_integer(32))
FORMATS.checks("byte", raises=(binascii.Error, ValueError))(_byte)


# --- strictness -------------------------------------------------------------------------


def _close(schema: Any, definitions: Mapping[str, Any]) -> Any:
    """A copy of ``schema`` in which every object schema that names its properties allows
    no others (unless it says otherwise), and ``allOf`` of local ``$ref``s is inlined so
    that closing does not reject the members' properties."""
    if isinstance(schema, list):
        return [_close(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    members = schema.get("allOf")
    if isinstance(members, list) and all(_local_ref(m) in definitions for m in members):
        merged = dict(schema.get("properties") or {})
        for member in members:
            merged.update(definitions[_local_ref(member)].get("properties") or {})
        schema.pop("allOf")
        schema["properties"] = merged
    closed: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "definitions", "patternProperties") and isinstance(value, dict):
            closed[key] = {name: _close(sub, definitions) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            closed[key] = _close(value, definitions)
        else:
            closed[key] = value
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def _local_ref(schema: Any) -> str:
    ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
    return ref.removeprefix("#/definitions/") if ref.startswith("#/definitions/") else ""


def _absolute(schema: Any) -> Any:
    """``schema`` with local ``#/…`` references pointing into the registered swagger."""
    if isinstance(schema, list):
        return [_absolute(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: (
            f"{SWAGGER_URI}{value}"
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _absolute(value)
        )
        for key, value in schema.items()
    }


# --- the documents ------------------------------------------------------------------------


@functools.cache
def swagger() -> dict[str, Any]:
    """The swagger document, as published."""
    require_specs()
    document: dict[str, Any] = json.loads(SWAGGER_PATH.read_text())
    return document


@functools.cache
def _registry(strict: bool) -> Registry[Any]:
    document = swagger()
    if strict:
        document = copy.deepcopy(document)
        definitions = document["definitions"]
        document["definitions"] = {
            name: _close(schema, definitions) for name, schema in definitions.items()
        }
    registry: Registry[Any] = Registry().with_resource(
        SWAGGER_URI, DRAFT4.create_resource(document)
    )
    return registry


@functools.cache
def crd_schema() -> dict[str, Any]:
    """The Application CRD's ``openAPIV3Schema`` for ``v1alpha1``."""
    require_specs()
    crd = yaml.safe_load(CRD_PATH.read_text())
    for version in crd["spec"]["versions"]:
        if version["name"] == CRD_VERSION:
            schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"{CRD_PATH} has no {CRD_VERSION} version")


def swagger_validator(definition_name: str, *, strict: bool = True) -> Draft4Validator:
    """A validator for ``#/definitions/<definition_name>`` of the swagger."""
    if definition_name not in swagger()["definitions"]:
        raise AssertionError(f"the swagger defines no {definition_name!r}")
    return _schema_validator({"$ref": f"#/definitions/{definition_name}"}, strict=strict)


def _schema_validator(schema: Mapping[str, Any], *, strict: bool) -> Draft4Validator:
    if strict:
        schema = _close(schema, swagger()["definitions"])
    return Draft4Validator(_absolute(schema), registry=_registry(strict), format_checker=FORMATS)


def crd_validator(*, strict: bool = True) -> Draft4Validator:
    """A validator for an Application object against the CRD's ``v1alpha1`` schema (the
    ``x-kubernetes-*`` keywords are ignored, except preserve-unknown-fields in strict
    mode)."""
    schema = crd_schema()
    return Draft4Validator(_close(schema, {}) if strict else schema, format_checker=FORMATS)


def problems(validator: Draft4Validator, instance: Any) -> list[str]:
    """Each way ``instance`` breaks the schema, as ``path: message``."""
    found = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        found.append(f"{where}: {error.message}")
    return found


# --- operations ---------------------------------------------------------------------------


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{body}\\Z")


def find_operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The swagger path template matching ``path`` (a template or a concrete path) and
    its operation for ``method``; AssertionError if the API has no such operation."""
    paths: dict[str, Any] = swagger()["paths"]
    verb = method.lower()
    if path in paths:
        candidates = [path]
    else:
        candidates = sorted(
            (t for t in paths if _template_pattern(t).match(path)), key=lambda t: t.count("{")
        )
    if not candidates:
        raise AssertionError(f"{method.upper()} {path}: no such path in Argo CD's API")
    for template in candidates:
        if verb in paths[template]:
            operation: dict[str, Any] = paths[template][verb]
            return template, operation
    raise AssertionError(
        f"{method.upper()} {path}: Argo CD's API has {candidates[0]} only for "
        + ", ".join(m.upper() for m in paths[candidates[0]] if m in METHODS)
    )


def check_request(
    method: str,
    path_template: str,
    body: Any,
    *,
    query: Mapping[str, Any] | None = None,
) -> None:
    """Fail unless Argo CD's API has ``method path_template`` (a template such as
    ``/api/v1/applications/{name}/sync`` or a concrete path) and ``body`` fits its body
    parameter (``None``: no body). ``query``: parameters sent, each checked against the
    declared query parameters and their types."""
    template, operation = find_operation(method, path_template)
    parameters = operation.get("parameters") or []
    body_parameters = [p for p in parameters if p.get("in") == "body"]
    found: list[str] = []
    if body is not None and not body_parameters:
        found.append("sends a body, but the operation takes none")
    elif body is None and body_parameters and body_parameters[0].get("required"):
        found.append("sends no body, but the operation requires one")
    elif body is not None:
        validator = _schema_validator(body_parameters[0]["schema"], strict=True)
        found.extend(f"body {p}" for p in problems(validator, body))
    declared = {p["name"]: p for p in parameters if p.get("in") == "query"}
    for name, value in (query or {}).items():
        parameter = declared.get(name)
        if parameter is None:
            found.append(f"query parameter {name!r} is not declared")
            continue
        found.extend(_query_problems(name, parameter, value))
    if found:
        raise AssertionError(f"{method.upper()} {template}: " + "; ".join(found))


def _query_problems(name: str, parameter: Mapping[str, Any], value: Any) -> list[str]:
    values = value if isinstance(value, list | tuple) else [value]
    if len(values) > 1 and parameter.get("type") != "array":
        return [f"query parameter {name!r} is not repeatable"]
    kind = parameter.get("items", {}).get("type") if parameter.get("type") == "array" else None
    kind = kind or parameter.get("type")
    found = []
    for each in values:
        text = str(each).lower() if isinstance(each, bool) else str(each)
        if kind == "boolean" and text not in ("true", "false"):
            found.append(f"query parameter {name!r} must be true or false, not {each!r}")
        if kind == "integer" and not _DECIMAL.match(text):
            found.append(f"query parameter {name!r} must be an integer, not {each!r}")
    return found


def check_response(method: str, path: str, status: int, body: Any) -> None:
    """Fail unless ``body`` fits what the operation answers with ``status``: its ``200``
    schema, or ``runtimeError`` (the ``default`` response) for an error."""
    template, operation = find_operation(method, path)
    responses = operation.get("responses") or {}
    response = responses.get(str(status)) or (responses.get("default") if status >= 400 else None)
    if response is None:
        raise AssertionError(f"{method.upper()} {template}: the API declares no HTTP {status}")
    schema = response.get("schema")
    if schema is None:
        return
    found = problems(_schema_validator(schema, strict=True), body)
    if found:
        raise AssertionError(
            f"{method.upper()} {path} → {status} does not fit the swagger: " + "; ".join(found)
        )


def check_application(application: Any) -> None:
    """Fail unless ``application`` fits the Application CRD (strictly)."""
    found = problems(crd_validator(), application)
    name = (
        (application.get("metadata") or {}).get("name") if isinstance(application, dict) else None
    )
    if found:
        raise AssertionError(f"Application {name!r} does not fit the CRD: " + "; ".join(found))
