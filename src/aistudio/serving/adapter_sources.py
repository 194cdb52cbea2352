"""Where a runtime adapter comes from, and the sha256 check every source passes before loading.

`lora_path` in `POST /v1/load_lora_adapter` names one of:

- a local directory under one of `adapters.allowed_roots` (symlinks resolved first, so a link
  cannot lead outside): a serving bundle (`manifest.json`, aistudio-bundle/1), one adapter
  directory inside a bundle (`<bundle>/adapters/<name>`, checked against the bundle's manifest),
  or an adapter package (`manifest.json`, aistudio-adapter/1: one adapter and its files' sha256);
- the registry, `models:/<name>@<alias>` or `models:/<name>/<version>`: the version's artifacts,
  whose manifest must also match the sha256 tagged on the version at registration;
- an artifact URI MLflow can download (`s3://...`, `runs:/...`, `mlflow-artifacts:/...`).

Whatever the source, the adapter files are hashed against the manifest; a bare PEFT directory
without one is refused, because nothing would say that its weights are the ones that were
evaluated. Which adapter of a bundle: the one named like `lora_name`, else its only adapter.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from aistudio.bundle import ADAPTERS_DIR, BUNDLE_FORMAT, MANIFEST, read_manifest, sha256_file
from aistudio.config import Strict, validate
from aistudio.errors import UserError
from aistudio.training.adapters import ADAPTER_FILES

ADAPTER_FORMAT = "aistudio-adapter/1"
_REMOTE_SCHEMES = ("s3://", "runs:/", "mlflow-artifacts:/", "gs://", "wasbs://", "hdfs://")


class SourceError(Exception):
    """The source cannot be used; `kind` picks the HTTP answer (not_allowed | integrity | invalid)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class AdapterManifest(Strict):
    """`manifest.json` of an adapter package: one LoRA adapter for one base model."""

    format: Literal["aistudio-adapter/1"] = ADAPTER_FORMAT
    model: str = Field(min_length=1)
    family: Literal["causal", "seq2seq"]
    files: dict[str, str]


@dataclass(frozen=True)
class VerifiedAdapter:
    directory: Path  # holds ADAPTER_FILES, hashed
    model: str  # the base model the manifest says it belongs to
    manifest_sha256: str
    source: str


def package_adapter(adapter_dir: Path, out_dir: Path, model: str, family: str) -> Path:
    """Write an adapter package: the adapter's two files and a manifest with their sha256."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ADAPTER_FILES:
        (out_dir / name).write_bytes((adapter_dir / name).read_bytes())
        files[name] = sha256_file(out_dir / name)
    manifest = AdapterManifest(model=model, family=family, files=files)
    (out_dir / MANIFEST).write_text(json.dumps(manifest.model_dump(), indent=2, sort_keys=True) + "\n")
    return out_dir


def _check_files(root: Path, files: dict[str, str], wanted: Sequence[str], where: str) -> None:
    for rel in wanted:
        path = root / rel
        if rel not in files:
            raise SourceError("integrity", f"{where}: {rel} is not listed in its manifest")
        if path.is_symlink() or not path.is_file():
            raise SourceError("integrity", f"{where}: {rel} is missing or not a regular file")
        if sha256_file(path) != files[rel]:
            raise SourceError("integrity", f"{where}: sha256 mismatch for {rel} — refusing to load")


def _from_bundle(root: Path, lora_name: str, where: str, adapter: str | None = None) -> VerifiedAdapter:
    try:
        manifest = read_manifest(root)
    except UserError as err:
        raise SourceError("invalid", f"{where}: {'; '.join(err.problems)}") from None
    if adapter is None:
        if lora_name in manifest.adapters:
            adapter = lora_name
        elif len(manifest.adapters) == 1:
            adapter = manifest.adapters[0]
        else:
            held = ", ".join(manifest.adapters) or "none"
            raise SourceError(
                "invalid", f"{where}: bundle has adapters {held}; name one as lora_name or in lora_path"
            )
    elif adapter not in manifest.adapters:
        raise SourceError("invalid", f"{where}: bundle has no adapter '{adapter}'")
    _check_files(root, manifest.files, [f"{ADAPTERS_DIR}/{adapter}/{f}" for f in ADAPTER_FILES], where)
    return VerifiedAdapter(root / ADAPTERS_DIR / adapter, manifest.model, sha256_file(root / MANIFEST), where)


def _from_package(root: Path, where: str) -> VerifiedAdapter:
    data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    try:
        manifest = validate(AdapterManifest, data, f"{where}/{MANIFEST}")
    except UserError as err:
        raise SourceError("invalid", "; ".join(err.problems)) from None
    _check_files(root, manifest.files, list(ADAPTER_FILES), where)
    return VerifiedAdapter(root, manifest.model, sha256_file(root / MANIFEST), where)


def verify_directory(root: Path, lora_name: str, where: str) -> VerifiedAdapter:
    """The verified adapter in a downloaded or local directory (bundle, bundle adapter, package)."""
    manifest = root / MANIFEST
    if manifest.is_file():
        try:
            fmt = json.loads(manifest.read_text(encoding="utf-8")).get("format")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise SourceError("invalid", f"{where}: {MANIFEST} is not a JSON object") from None
        if fmt == BUNDLE_FORMAT:
            return _from_bundle(root, lora_name, where)
        if fmt == ADAPTER_FORMAT:
            return _from_package(root, where)
        raise SourceError(
            "invalid", f"{where}: {MANIFEST} has format {fmt!r}, not a bundle or adapter package"
        )
    bundle = root.parent.parent
    if root.parent.name == ADAPTERS_DIR and (bundle / MANIFEST).is_file():
        return _from_bundle(bundle, lora_name, where, adapter=root.name)
    raise SourceError(
        "integrity",
        f"{where}: no {MANIFEST} to verify the adapter against; load a bundle, a bundle's adapter or an "
        "adapter package (aistudio.serving.adapter_sources.package_adapter)",
    )


def local_directory(path: str, allowed_roots: Sequence[Path]) -> Path:
    """`path` resolved, if it lies under one of `allowed_roots` (also resolved)."""
    if not allowed_roots:
        raise SourceError(
            "not_allowed", "loading adapters from local paths is off (adapters.allowed_roots is empty)"
        )
    resolved = Path(os.path.realpath(path))
    for root in allowed_roots:
        if resolved.is_relative_to(Path(os.path.realpath(root))):
            if not resolved.is_dir():
                raise SourceError("invalid", f"lora_path {path} is not a directory")
            return resolved
    roots = ", ".join(str(r) for r in allowed_roots)
    raise SourceError("not_allowed", f"lora_path {path} is outside the allowed adapter roots ({roots})")


@dataclass
class Fetched:
    """A verified adapter and the scratch directory holding it (removed once it is loaded)."""

    adapter: VerifiedAdapter
    scratch: tempfile.TemporaryDirectory[str] | None

    def cleanup(self) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()


def _download_registry(uri: str, tracking_uri: str, scratch: Path, lora_name: str) -> VerifiedAdapter:
    import mlflow.artifacts

    from aistudio.registry import TAG_MANIFEST_SHA256, ModelRegistry, parse_model_uri

    name, version, alias = parse_model_uri(uri)
    registry = ModelRegistry(tracking_uri)
    info = registry.show(name, version if version is not None else alias or "")
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=info.source, dst_path=str(scratch), tracking_uri=tracking_uri
        )
    )
    where = f"{uri} (v{info.version})"
    verified = verify_directory(local, lora_name, where)
    registered = info.tags.get(TAG_MANIFEST_SHA256)
    if registered and verified.manifest_sha256 != registered:
        raise SourceError("integrity", f"{where}: manifest differs from the one registered with this version")
    return verified


def fetch(lora_path: str, lora_name: str, allowed_roots: Sequence[Path], tracking_uri: str | None) -> Fetched:
    """Resolve, download if remote, and verify `lora_path` (blocking: run it off the event loop)."""
    if lora_path.startswith("models:/") or lora_path.startswith(_REMOTE_SCHEMES):
        if tracking_uri is None:
            raise SourceError("not_allowed", "registry and artifact sources need adapters.tracking_uri")
        scratch = tempfile.TemporaryDirectory(prefix="aistudio-adapter-")
        try:
            if lora_path.startswith("models:/"):
                adapter = _download_registry(lora_path, tracking_uri, Path(scratch.name), lora_name)
            else:
                import mlflow.artifacts

                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=lora_path, dst_path=scratch.name, tracking_uri=tracking_uri
                    )
                )
                adapter = verify_directory(local, lora_name, lora_path)
        except SourceError:
            scratch.cleanup()
            raise
        except UserError as err:
            scratch.cleanup()
            raise SourceError("invalid", f"{lora_path}: {'; '.join(err.problems)}") from None
        except Exception as exc:  # noqa: BLE001 - MLflow and boto raise a zoo of types for "not found"
            scratch.cleanup()
            raise SourceError(
                "invalid", f"{lora_path}: cannot download ({type(exc).__name__}: {exc})"
            ) from None
        return Fetched(adapter, scratch)
    directory = local_directory(lora_path, allowed_roots)
    return Fetched(verify_directory(directory, lora_name, lora_path), None)


def describe(adapter: VerifiedAdapter) -> dict[str, Any]:
    return {"source": adapter.source, "manifest_sha256": adapter.manifest_sha256, "model": adapter.model}
