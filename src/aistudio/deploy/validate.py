"""Offline checks of the Kubernetes manifests: would the API server accept them, and do they
follow our rules?

`validate_all(k8s_root)` renders the shared platform (k8s/ itself) and every overlay under
k8s/overlays with `kubectl kustomize`, then checks each rendered object for

- schema: core kinds strictly against the Kubernetes 1.32 OpenAPI schema (kubernetes-validate,
  unknown fields are errors); Argo Rollouts and Prometheus Operator kinds against the JSON
  schemas in ./schemas; a Rollout's pod template against the core PodTemplateSpec schema;
- security: the Pod Security "restricted" level for every pod template (non-root, no privilege
  escalation, ALL capabilities dropped, RuntimeDefault seccomp, allowed volume types), plus a
  read-only root filesystem with a writable /tmp, requests and limits, startup/readiness/
  liveness probes on serving containers, pinned image tags and no secret values inline;
- references: Service and PodDisruptionBudget selectors match a pod template; Rollout strategy
  Services, AnalysisTemplates and their required args, HPA targets, ServiceAccounts and
  ConfigMaps exist in the same render;
- the metric contract: every `aistudio_*` name in an AnalysisTemplate query, alert rule or
  Grafana dashboard is exported by the server (aistudio.deploy.contract.SERVER_METRICS), and
  every Prometheus analysis guards an empty result so a quiet canary is inconclusive.

Each problem is one line: ``production: Rollout/model-server: container server has no readinessProbe``.

    python -m aistudio.deploy.validate [k8s]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from aistudio import layout
from aistudio.deploy.contract import metric_family
from aistudio.deploy.integrity import check_integrity
from aistudio.deploy.rbac import check_rbac
from aistudio.errors import UserError

KUBERNETES_VERSION = "1.32"
SCHEMA_DIR = Path(__file__).with_name("schemas")
PLATFORM = "platform"  # the name validate_all gives the render of k8s/ itself
RENDER_TIMEOUT_S = 120

# Kinds outside the Kubernetes API, checked against our own schemas (see each file's $comment).
CUSTOM_SCHEMAS: dict[tuple[str, str], str] = {
    ("argoproj.io/v1alpha1", "Rollout"): "rollout.json",
    ("argoproj.io/v1alpha1", "AnalysisTemplate"): "analysistemplate.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}

# Where each workload kind keeps its pod template.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Rollout": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

# Pod Security "restricted": the only volume types a pod may use.
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
REQUIRED_PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
REQUIRED_RESOURCES = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")

SECRET_ENV_NAME = re.compile(
    r"(^|_)(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|SECRET_KEY|PRIVATE_KEY|CREDENTIALS?)(_|$)"
)
CREDENTIALS_IN_URI = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
SERVER_METRIC_NAME = re.compile(r"\baistudio_[A-Za-z0-9_:]*")


class RenderError(Exception):
    """`kubectl kustomize` failed; the message is kustomize's own error line."""


# --- rendering ------------------------------------------------------------------------------------


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize <directory>` renders, in its order."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise UserError(
            "kubectl is not on PATH; install kubectl >= 1.27 (its built-in kustomize renders k8s/)"
        )
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RenderError(_kustomize_error(proc.stderr))
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _kustomize_error(stderr: str) -> str:
    """kubectl wraps kustomize's error in klog noise and can dump whole configs; keep the gist."""
    text = " ".join(stderr.split())
    match = re.search(r'err="(.*?)"(?: |$)', text) or re.search(r"[Ee]rror: (.*)", text)
    message = match.group(1) if match else text
    return message if len(message) <= 300 else message[:297] + "..."


# --- entry points -----------------------------------------------------------------------------------


def validate_overlay(overlay_dir: Path | str, name: str | None = None) -> list[str]:
    """Render one kustomization and return its problems, each prefixed with `name` (default:
    the directory name). An empty list means it is ready to apply."""
    overlay_dir = Path(overlay_dir)
    name = name or overlay_dir.name
    try:
        objects = render(overlay_dir)
    except RenderError as err:
        return [f"{name}: kustomize build failed: {err}"]
    except subprocess.TimeoutExpired:
        return [f"{name}: kustomize build did not finish within {RENDER_TIMEOUT_S} s"]
    return [f"{name}: {problem}" for problem in check_objects(objects)]


def validate_all(k8s_root: Path | str) -> dict[str, list[str]]:
    """Problems per render: "platform" for k8s_root's own kustomization (namespaces, MLflow,
    monitoring), then one entry per overlay under k8s_root/overlays, by directory name."""
    root = Path(k8s_root)
    results: dict[str, list[str]] = {}
    if (root / "kustomization.yaml").exists():
        results[PLATFORM] = validate_overlay(root, name=PLATFORM)
    overlays = root / "overlays"
    for overlay in sorted(overlays.iterdir()) if overlays.is_dir() else []:
        if (overlay / "kustomization.yaml").exists():
            results[overlay.name] = validate_overlay(overlay)
    if not results:
        raise UserError(f"{root}: no kustomization.yaml here or under overlays/; is this the k8s directory?")
    return results


def check_objects(objects: list[dict[str, Any]]) -> list[str]:
    """Every check on one rendered set of objects; problems as '<Kind>/<name>: <what>'."""
    problems: list[str] = []
    for obj in objects:
        problems += check_schema(obj)
        problems += check_security(obj)
        problems += check_secrets(obj)
        problems += check_metric_names(obj)
        problems += check_analysis_guards(obj)
    problems += check_references(objects)
    problems += check_rbac(objects, pod_spec_of)
    problems += check_integrity(objects, pod_spec_of)
    return problems


# --- schema ----------------------------------------------------------------------------------------


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


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
    ref = _ref(obj)
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


# --- security --------------------------------------------------------------------------------------


def _pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload (its metadata + spec); a bare Pod is its own template."""
    if obj.get("kind") == "Pod":
        return obj
    node: Any = obj if obj.get("kind") in POD_TEMPLATE_PATHS else None
    for key in POD_TEMPLATE_PATHS.get(obj.get("kind", ""), ()):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    template = _pod_template(obj)
    spec = template.get("spec") if template else None
    return spec if isinstance(spec, dict) else None


def _pod_labels(obj: dict[str, Any]) -> dict[str, str] | None:
    template = _pod_template(obj)
    return None if template is None else (template.get("metadata") or {}).get("labels") or {}


def _containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field, label in (("initContainers", "init container"), ("containers", "container")):
        for container in pod.get(field) or []:
            yield f"{label} {container.get('name', '?')}", container


def image_problem(image: str | None) -> str | None:
    """Why an image reference is not pinned, or None. A digest pins it whatever the tag says."""
    if not image:
        return "has no image"
    name, _, digest = image.partition("@")
    if digest:
        return None
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if not tag:
        return f"image {image} has no tag; pin a version"
    if tag == "latest":
        return f"image {image} uses the mutable tag latest; pin a version"
    return None


def _dig(mapping: dict[str, Any], dotted: str) -> Any:
    node: Any = mapping
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def check_security(obj: dict[str, Any]) -> list[str]:
    """Pod Security "restricted" plus our own rules, for every pod template in `obj`."""
    pod = pod_spec_of(obj)
    if not isinstance(pod, dict):
        return []
    ref = _ref(obj)
    problems = []
    pod_sc = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{ref}: {flag} is forbidden by the restricted Pod Security level")
    for volume in pod.get("volumes") or []:
        kinds = [key for key in volume if key != "name"]
        if kinds and kinds[0] not in RESTRICTED_VOLUME_TYPES:
            problems.append(
                f"{ref}: volume {volume.get('name')} is a {kinds[0]} volume, "
                "which the restricted Pod Security level forbids"
            )
    for who, container in _containers(pod):
        sc = container.get("securityContext") or {}
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(
                f"{ref}: {who} does not set runAsNonRoot: true (pod or container securityContext)"
            )
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{ref}: {who} runs as uid 0")
        if sc.get("privileged"):
            problems.append(f"{ref}: {who} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{ref}: {who} does not set securityContext.allowPrivilegeEscalation: false")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{ref}: {who} does not drop ALL capabilities")
        added = sorted(set(capabilities.get("add") or []) - ALLOWED_ADDED_CAPABILITIES)
        if added:
            problems.append(
                f"{ref}: {who} adds capabilities {', '.join(added)}; only NET_BIND_SERVICE is allowed"
            )
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(
                f"{ref}: {who} has no seccompProfile type RuntimeDefault (pod or container securityContext)"
            )
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{ref}: {who} does not set securityContext.readOnlyRootFilesystem: true")
        elif not any(
            m.get("mountPath") == "/tmp" and not m.get("readOnly")
            for m in container.get("volumeMounts") or []
        ):
            problems.append(f"{ref}: {who} has a read-only root filesystem but no writable volume at /tmp")
        missing = [r for r in REQUIRED_RESOURCES if _dig(container.get("resources") or {}, r) is None]
        if missing:
            problems.append(f"{ref}: {who} sets no resources.{', resources.'.join(missing)}")
        if (why := image_problem(container.get("image"))) is not None:
            problems.append(f"{ref}: {who} {why}")
        if who.startswith("container "):
            problems += [
                f"{ref}: {who} has no {probe}" for probe in REQUIRED_PROBES if probe not in container
            ]
    return problems


# --- secrets ---------------------------------------------------------------------------------------


def check_secrets(obj: dict[str, Any]) -> list[str]:
    """No secret values in the repository: not in env, not on command lines, not in objects."""
    ref = _ref(obj)
    kind = obj.get("kind")
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        return [
            (
                f"{ref}: Secret values must not be committed; create the Secret out of band "
                "(secret manager, sealed-secrets) and reference it by name"
            )
        ]
    problems = []
    if kind == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if SECRET_ENV_NAME.search(key.upper()):
                problems.append(
                    f"{ref}: key {key} looks like a secret; ConfigMaps are not secret, use a Secret"
                )
            elif isinstance(value, str) and CREDENTIALS_IN_URI.search(value):
                problems.append(f"{ref}: key {key} embeds credentials in a URI; use a Secret")
    pod = pod_spec_of(obj)
    for who, container in _containers(pod) if isinstance(pod, dict) else []:
        for env in container.get("env") or []:
            name, value = env.get("name", ""), env.get("value")
            if not value:
                continue
            # NAME_FILE=/abs/path names where a mounted secret is (the *_FILE convention), not its value.
            names_a_file = name.upper().endswith("_FILE") and str(value).startswith("/")
            if SECRET_ENV_NAME.search(name.upper()) and not names_a_file:
                problems.append(f"{ref}: {who} sets {name} inline; use valueFrom.secretKeyRef")
            elif CREDENTIALS_IN_URI.search(str(value)):
                problems.append(f"{ref}: {who} embeds credentials in {name}; use valueFrom.secretKeyRef")
        for arg in [*(container.get("command") or []), *(container.get("args") or [])]:
            if CREDENTIALS_IN_URI.search(str(arg)):
                problems.append(f"{ref}: {who} passes credentials on its command line; use a Secret")
    return problems


# --- metric contract -------------------------------------------------------------------------------


def _queries(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query an object carries; for an HPA, the custom metric names."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "AnalysisTemplate":
        for metric in spec.get("metrics") or []:
            query = ((metric.get("provider") or {}).get("prometheus") or {}).get("query")
            if query:
                yield f"metric {metric.get('name')}", query
    elif kind == "HorizontalPodAutoscaler":
        for metric in spec.get("metrics") or []:
            field = {"Pods": "pods", "Object": "object", "External": "external"}.get(metric.get("type", ""))
            name = ((metric.get(field) or {}).get("metric") or {}).get("name") if field else None
            if name:
                yield f"{metric['type']} metric", name
    elif kind == "PrometheusRule":
        for group in spec.get("groups") or []:
            for rule in group.get("rules") or []:
                yield f"rule {rule.get('alert') or rule.get('record')}", str(rule.get("expr", ""))
    elif (
        kind == "ConfigMap"
        and ((obj.get("metadata") or {}).get("labels") or {}).get("grafana_dashboard") == "1"
    ):
        for key, text in (obj.get("data") or {}).items():
            try:
                dashboard = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                yield f"dashboard {key}", ""
                continue
            yield from _dashboard_queries(key, dashboard)


def _dashboard_queries(key: str, node: Any, title: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        title = node.get("title", title) if isinstance(node.get("title"), str) else title
        for field in ("expr", "definition"):
            if isinstance(node.get(field), str):
                yield f"dashboard {key} panel '{title}'", node[field]
        for value in node.values():
            yield from _dashboard_queries(key, value, title)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_queries(key, item, title)


def check_metric_names(obj: dict[str, Any]) -> list[str]:
    """Every aistudio_* series a query (or an HPA custom metric) names must be one the server exports."""
    ref = _ref(obj)
    problems = []
    for where, query in _queries(obj):
        if not query:
            problems.append(f"{ref}: {where} is not valid JSON")
            continue
        for name in dict.fromkeys(SERVER_METRIC_NAME.findall(query)):
            if metric_family(name) is None:
                problems.append(
                    f"{ref}: {where} queries {name}, which the model server does not export "
                    "(aistudio.deploy.contract.SERVER_METRICS)"
                )
    return problems


def check_analysis_guards(obj: dict[str, Any]) -> list[str]:
    """A Prometheus analysis must treat an empty result as Inconclusive: `result[0]` on an empty
    vector is an evaluation error, and enough errors abort a healthy but quiet canary."""
    if obj.get("kind") != "AnalysisTemplate":
        return []
    problems = []
    for metric in (obj.get("spec") or {}).get("metrics") or []:
        if "prometheus" not in (metric.get("provider") or {}):
            continue
        conditions = [metric.get("successCondition") or "", metric.get("failureCondition") or ""]
        if not all("len(result)" in condition for condition in conditions):
            problems.append(
                f"{_ref(obj)}: metric {metric.get('name')} must check len(result) in both successCondition "
                "and failureCondition, so an empty result (a quiet canary) is Inconclusive"
            )
    return problems


# --- cross references ------------------------------------------------------------------------------


def _labels_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


def _analysis_blocks(strategy: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    canary = strategy.get("canary") or {}
    if isinstance(canary.get("analysis"), dict):
        yield "strategy.canary.analysis", canary["analysis"]
    for i, step in enumerate(canary.get("steps") or []):
        if isinstance(step, dict) and isinstance(step.get("analysis"), dict):
            yield f"strategy.canary.steps[{i}].analysis", step["analysis"]
    blue_green = strategy.get("blueGreen") or {}
    for field in ("prePromotionAnalysis", "postPromotionAnalysis"):
        if isinstance(blue_green.get(field), dict):
            yield f"strategy.blueGreen.{field}", blue_green[field]


def _strategy_services(strategy: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for kind in ("canary", "blueGreen"):
        block = strategy.get(kind) or {}
        for field in ("canaryService", "stableService", "activeService", "previewService"):
            if block.get(field):
                yield f"strategy.{kind}.{field}", block[field]
        for field in ("pingService", "pongService"):
            if (block.get("pingPong") or {}).get(field):
                yield f"strategy.{kind}.pingPong.{field}", block["pingPong"][field]


class _RenderIndex:
    """Lookups over one render: objects by (kind, namespace, name), and every pod template's labels."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self._objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self._pod_labels: list[tuple[str | None, dict[str, str]]] = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            self._objects[(obj.get("kind", ""), meta.get("namespace"), meta.get("name", ""))] = obj
            labels = _pod_labels(obj)
            if labels is not None:
                self._pod_labels.append((meta.get("namespace"), labels))

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._objects.get((kind, namespace, name))

    def selects_pods(self, namespace: str | None, selector: dict[str, str]) -> bool:
        return any(ns == namespace and selector.items() <= labels.items() for ns, labels in self._pod_labels)


def check_references(objects: list[dict[str, Any]]) -> list[str]:
    """Names and selectors that must resolve inside the same render (and namespace)."""
    index = _RenderIndex(objects)
    problems = []
    for obj in objects:
        ref, kind, spec = _ref(obj), obj.get("kind"), obj.get("spec") or {}
        namespace = (obj.get("metadata") or {}).get("namespace")
        selector = {
            "Service": spec.get("selector"),
            "PodDisruptionBudget": (spec.get("selector") or {}).get("matchLabels"),
            # An empty podSelector (default deny) selects every pod on purpose.
            "NetworkPolicy": (spec.get("podSelector") or {}).get("matchLabels"),
        }.get(kind or "")
        if selector and not index.selects_pods(namespace, selector):
            problems.append(f"{ref}: selector {_labels_text(selector)} matches no pod template in the render")
        if kind == "HorizontalPodAutoscaler":
            target = spec.get("scaleTargetRef") or {}
            if index.get(target.get("kind", ""), namespace, target.get("name", "")) is None:
                problems.append(
                    f"{ref}: scaleTargetRef {target.get('kind')}/{target.get('name')} is not in the render"
                )
        if kind == "Rollout":
            problems += _rollout_references(ref, namespace, spec, index)
        pod = pod_spec_of(obj)
        if isinstance(pod, dict):
            problems += _pod_references(ref, namespace, pod, index)
    return problems


def _rollout_references(
    ref: str, namespace: str | None, spec: dict[str, Any], index: _RenderIndex
) -> list[str]:
    problems = []
    strategy = spec.get("strategy") or {}
    for where, service in _strategy_services(strategy):
        if index.get("Service", namespace, service) is None:
            problems.append(f"{ref}: {where} names Service {service}, which is not in the render")
    for where, analysis in _analysis_blocks(strategy):
        passed = {arg.get("name") for arg in analysis.get("args") or []}
        for template_ref in analysis.get("templates") or []:
            name = template_ref.get("templateName", "")
            cluster_scope = bool(template_ref.get("clusterScope"))
            kind = "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate"
            template = index.get(kind, None if cluster_scope else namespace, name)
            if template is None:
                problems.append(f"{ref}: {where} references {kind} {name}, which is not in the render")
                continue
            for arg in (template.get("spec") or {}).get("args") or []:
                if "value" not in arg and "valueFrom" not in arg and arg.get("name") not in passed:
                    problems.append(
                        f"{ref}: {where} does not pass arg {arg.get('name')} that {kind}/{name} requires"
                    )
    return problems


def _pod_references(ref: str, namespace: str | None, pod: dict[str, Any], index: _RenderIndex) -> list[str]:
    problems = []
    account = pod.get("serviceAccountName")
    if account and account != "default" and index.get("ServiceAccount", namespace, account) is None:
        problems.append(f"{ref}: serviceAccountName {account} is not a ServiceAccount in the render")
    config_maps = [
        volume["configMap"]
        for volume in pod.get("volumes") or []
        if isinstance(volume.get("configMap"), dict)
    ]
    for _, container in _containers(pod):
        config_maps += [
            (env.get("valueFrom") or {}).get("configMapKeyRef") or {} for env in container.get("env") or []
        ]
        config_maps += [source.get("configMapRef") or {} for source in container.get("envFrom") or []]
    for config_map in config_maps:
        name = config_map.get("name")
        if name and not config_map.get("optional") and index.get("ConfigMap", namespace, name) is None:
            problems.append(f"{ref}: ConfigMap {name} is referenced but not in the render")
    return list(dict.fromkeys(problems))


# --- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render and check every kustomization under k8s/.")
    parser.add_argument("k8s_root", nargs="?", type=Path, default=layout.K8S_ROOT, help="default: k8s")
    args = parser.parse_args(argv)
    results = validate_all(args.k8s_root)
    problems = [problem for found in results.values() for problem in found]
    if problems:
        raise UserError(problems)
    print(f"{args.k8s_root}: {', '.join(results)} render and pass every check")
    return 0


if __name__ == "__main__":
    from aistudio.cli import run_cli

    run_cli(main)
