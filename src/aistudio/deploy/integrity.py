"""What a render must keep so the cluster runs what was checked, and keys stay out of env.

- A workload annotated `aistudio.io/image-pinning: digest` (staging and production) runs only
  images pinned by digest (`repo@sha256:<64 hex>`): a tag can be pointed at other bytes after
  the analysis passed, a digest cannot.
- No container gets API keys as an env value (`AISTUDIO_API_KEYS`): they are mounted as the key
  file `AISTUDIO_API_KEY_FILE` names, which `kubectl describe`, crash dumps and child processes
  do not show.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

PINNING_ANNOTATION = "aistudio.io/image-pinning"
DIGEST = "digest"
KEYS_ENV = "AISTUDIO_API_KEYS"
KEY_FILE_ENV = "AISTUDIO_API_KEY_FILE"
_DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")

PodSpecOf = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers"):
        yield from pod.get(key) or []


def requires_digests(obj: dict[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(PINNING_ANNOTATION) == DIGEST


def is_digest(image: str) -> bool:
    return bool(_DIGEST_REF.match(image))


def digest_fix(image: str) -> str:
    repo = image.partition("@")[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.partition(":")[0]
    return (
        f"pin it by digest: --image {repo}@sha256:<digest> "
        f"(`docker buildx imagetools inspect {image}` prints the digest of a pushed tag)"
    )


def check_integrity(objects: list[dict[str, Any]], pod_spec_of: PodSpecOf) -> list[str]:
    """Problems '<Kind>/<name>: <what and the fix>' for every rule of the module docstring."""
    problems = []
    for obj in objects:
        pod = pod_spec_of(obj)
        if not isinstance(pod, dict):
            continue
        ref, digests = _ref(obj), requires_digests(obj)
        for container in _containers(pod):
            name, image = container.get("name"), str(container.get("image") or "")
            if digests and not is_digest(image):
                problems.append(
                    f"{ref}: container {name} image {image} is not pinned by digest; this environment "
                    f"runs digests only — {digest_fix(image)}"
                )
            if any(env.get("name") == KEYS_ENV for env in container.get("env") or []):
                problems.append(
                    f"{ref}: container {name} gets API keys as the env value {KEYS_ENV}; mount the key "
                    f"file from the Secret and set {KEY_FILE_ENV} to its path"
                )
    return problems
