"""Would the API server accept the object? Core kinds strictly against the Kubernetes OpenAPI
schema (kubernetes-validate, unknown fields are errors); Argo Rollouts and Prometheus Operator kinds
against the JSON schemas in aistudio/deploy/schemas; a Rollout's pod template against the core
PodTemplateSpec schema."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from aistudio.deploy.validation.objects import object_ref

KUBERNETES_VERSION = "1.32"
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"

# Kinds outside the Kubernetes API, checked against our own schemas (see each file's $comment).
CUSTOM_SCHEMAS: dict[tuple[str, str], str] = {
    ("argoproj.io/v1alpha1", "Rollout"): "rollout.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "analysistemplate.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, minus the instance dumps that make oneOf/min/maxProperties unreadable."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("minProperties", "maxProperties") and "properties" in schema:
        return f"must set exactly one of {', '.join(schema['properties'])}"
    if error.validator in ("anyOf", "oneOf"):
        options = [sorted(option.get("required", [])) for option in error.validator_value]
        return f"must match one of the allowed forms (required keys: {' | '.join(map(str, options))})"
    return error.message


def _schema_problem(ref: str, error: jsonschema.ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    where = _path((*prefix, *error.absolute_path))
    return f"{ref}: {where + ': ' if where else ''}{_describe(error)}"


@cache
def _custom_validator(filename: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _core_problems(ref: str, obj: dict[str, Any], prefix: tuple[Any, ...] = ()) -> list[str]:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [_schema_problem(ref, err, prefix)]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            (
                f"{ref}: no schema for apiVersion {obj.get('apiVersion')} kind {obj.get('kind')}; "
                f"add one to src/aistudio/deploy/schemas and CUSTOM_SCHEMAS, or drop the object"
            )
        ]
    return []


def check_schema(obj: dict[str, Any]) -> list[str]:
    """Strict schema validation; unknown fields are errors, as `kubectl apply --validate=strict`."""
    ref = object_ref(obj)
    if not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return [f"{ref}: apiVersion and kind are required"]
    filename = CUSTOM_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if filename is None:
        return _core_problems(ref, obj)
    errors = sorted(
        _custom_validator(filename).iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))
    )
    problems = [_schema_problem(ref, error) for error in errors]
    template = (obj.get("spec") or {}).get("template") if obj["kind"] == "Rollout" else None
    if isinstance(template, dict):
        # The Rollout CRD embeds a PodTemplateSpec: check it with the real core schema.
        wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": template}
        problems += [
            p.replace(f"{ref}: template", f"{ref}: spec.template", 1) for p in _core_problems(ref, wrapper)
        ]
    return problems
