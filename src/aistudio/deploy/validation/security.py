"""Pod Security "restricted" for every pod template (non-root, no privilege escalation, ALL
capabilities dropped, RuntimeDefault seccomp, allowed volume types), plus our own rules: a read-only
root filesystem with a writable /tmp, requests and limits, startup/readiness/liveness probes on
serving containers, pinned image tags, and no secret values in the repository."""

from __future__ import annotations

import re
from typing import Any

from aistudio.deploy.validation.objects import containers, object_ref, pod_spec_of

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
    ref = object_ref(obj)
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
    for who, container in containers(pod):
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
    ref = object_ref(obj)
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
    for who, container in containers(pod) if isinstance(pod, dict) else []:
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
