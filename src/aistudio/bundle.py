"""The serving bundle: one directory holding everything the server loads, each file pinned by sha256.

```
<bundle>/manifest.json            what the bundle is, and the sha256 of every other file
<bundle>/base/                    HF model dir (config.json, *.safetensors, tokenizer files, aistudio.json)
<bundle>/adapters/<name>/         adapter_config.json + adapter_model.safetensors
<bundle>/reference_profile.json   optional: the drift reference, added by `extra_files`
```

This layout is the contract between the registry and the server. Weights are safetensors only: a
pickle (`.bin`, `.pt`, `.pkl`, ...) can run code when it is loaded, so it is refused on the way in
(`build_bundle`) and on the way out (`verify_bundle`). torch, transformers and peft are imported
inside the functions that need them: the registry CLI verifies downloads without paying for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator

from aistudio.config import FP32, SERVING_VARIANTS, ServingVariant, Strict, validate
from aistudio.errors import UserError
from aistudio.io import atomic_writer

BUNDLE_FORMAT = "aistudio-bundle/1"
MANIFEST = "manifest.json"
BASE_DIR = "base"
ADAPTERS_DIR = "adapters"
REFERENCE_PROFILE = "reference_profile.json"
BUNDLE_VARIANTS = SERVING_VARIANTS
# Formats that unpickle (or may) on load: torch.save, joblib, numpy object arrays, checkpoints.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Lineage(Strict):
    """Where the bundle came from: code, data, parameters and the MLflow runs of each stage."""

    git_commit: str
    data_hash: str
    params_hash: str
    # The feature store the model was trained and evaluated on (aistudio.features); None before it existed.
    feature_fingerprint: str | None = None
    run_ids: dict[str, str] = Field(default_factory=dict)


class Manifest(Strict):
    """`manifest.json`: the bundle's identity and the sha256 of every file beside it."""

    format: Literal["aistudio-bundle/1"] = BUNDLE_FORMAT
    model: str = Field(min_length=1)
    family: Literal["causal", "seq2seq"]
    variant: ServingVariant
    adapters: list[str] = Field(default_factory=list)
    files: dict[str, str]
    evaluation: dict[str, Any] = Field(default_factory=dict)
    lineage: Lineage

    @field_validator("adapters")
    @classmethod
    def _adapter_names_are_directory_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not _ADAPTER_NAME.match(n) or n in ("base", "__base__")]
        if bad:
            raise ValueError(f"adapter names must be plain directory names other than 'base' (got {bad})")
        if len(set(names)) != len(names):
            raise ValueError(f"adapter names must be unique (got {names})")
        return names

    @field_validator("files")
    @classmethod
    def _files_are_relative_with_sha256(cls, files: dict[str, str]) -> dict[str, str]:
        for rel, digest in files.items():
            _check_relative(rel)
            if not _SHA256.match(digest):
                raise ValueError(f"files['{rel}'] must be a lowercase hex sha256 (got {digest!r})")
        return files

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, sort_keys=True, default=_json_scalar) + "\n"


@dataclass(frozen=True)
class LoadedBundle:
    """A bundle ready to serve: an AdapterSet when it carries adapters, else the plain model."""

    model: Any
    tokenizer: Any
    family: Any  # aistudio.modeling.family.ModelFamily
    manifest: Manifest
    adapter_names: tuple[str, ...]


def _json_scalar(value: Any) -> Any:
    # Evaluation summaries often hold numpy/torch scalars; anything else unserialisable is a bug.
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"evaluation/lineage value {value!r} ({type(value).__name__}) is not JSON-serialisable")


def _check_relative(rel: str) -> None:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or rel in ("", ".") or "\\" in rel:
        raise ValueError(f"file path '{rel}' must be relative to the bundle, without '..'")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_pickled(path: Path) -> bool:
    """Pickle by name, or by content for files that are neither safetensors nor text."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if path.suffix.lower() == ".safetensors":
        return False  # its 8-byte header length may start with 0x80 like a pickle; load checks it
    with path.open("rb") as handle:
        head = handle.read(4)
    # Pickle protocol 2-5 opens with PROTO (0x80) + version; torch.save writes a zip archive.
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head == b"PK\x03\x04"


def _pickle_problem(where: str, rel: str) -> str:
    return (
        f"{where}: {rel} is a pickle-based file; bundles hold safetensors only "
        "(save with safe_serialization=True and remove it)"
    )


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


# --- building --------------------------------------------------------------------------------------


def _plan(base_dir: Path, adapters: Mapping[str, Path], extra_files: Mapping[str, Path]) -> dict[str, Path]:
    """bundle-relative path → source file, after refusing pickles and incomplete inputs."""
    from aistudio.modeling.loading import MODEL_CARD
    from aistudio.training.adapters import ADAPTER_FILES

    problems: list[str] = []
    plan: dict[str, Path] = {}
    if not base_dir.is_dir():
        raise UserError(f"base model directory {base_dir} not found (run the stage that produces it)")
    for source in _files_under(base_dir):
        plan[f"{BASE_DIR}/{source.relative_to(base_dir).as_posix()}"] = source
    for required in ("config.json", MODEL_CARD):
        if not (base_dir / required).is_file():
            problems.append(f"base model directory {base_dir} lacks {required}")
    if not any(base_dir.glob("*.safetensors")):
        problems.append(f"base model directory {base_dir} has no *.safetensors weights")
    for name, directory in adapters.items():
        directory = Path(directory)
        missing = [f for f in ADAPTER_FILES if not (directory / f).is_file()]
        if missing:
            problems.append(f"adapter '{name}': {directory} lacks {', '.join(missing)}")
        for source in _files_under(directory) if directory.is_dir() else []:
            rel = source.relative_to(directory).as_posix()
            if source.name in ADAPTER_FILES or _looks_pickled(source):
                plan[f"{ADAPTERS_DIR}/{name}/{rel}"] = source  # pickles stay in the plan to be refused
    for rel, source in extra_files.items():
        try:
            _check_relative(rel)
        except ValueError as exc:
            problems.append(f"extra_files: {exc}")
            continue
        if rel == MANIFEST or rel.split("/", 1)[0] in (BASE_DIR, ADAPTERS_DIR):
            problems.append(f"extra_files: '{rel}' would overwrite the bundle's own {rel.split('/', 1)[0]}")
        elif not Path(source).is_file():
            problems.append(f"extra_files: {source} (for '{rel}') is not a file")
        else:
            plan[rel] = Path(source)
    pickled = [f"{source} (for {rel})" for rel, source in plan.items() if _looks_pickled(source)]
    problems += [_pickle_problem("build_bundle", what) for what in pickled]
    if problems:
        raise UserError(problems)
    return plan


def _check_identity(
    base_dir: Path, adapters: Mapping[str, Path], model: str, family: str, variant: str
) -> None:
    """The base dir's card, its recorded variant and every adapter's task type must match the bundle."""
    from peft import PeftConfig

    from aistudio.modeling.family import family_for
    from aistudio.modeling.loading import ModelCard
    from aistudio.quantization.variants import read_variant_info

    card = ModelCard.load(base_dir)
    problems = []
    if card.model != model:
        problems.append(f"{base_dir}: holds model '{card.model}', but the bundle is for '{model}'")
    if card.family != family:
        problems.append(f"{base_dir}: is a {card.family} model, but the bundle says family '{family}'")
    info = read_variant_info(base_dir) or {"variant": FP32, "status": "ok"}
    recorded, reason = info.get("variant"), info.get("reason", "no reason recorded")
    if recorded != variant:
        problems.append(f"{base_dir}: holds the {recorded} variant, but the bundle says '{variant}'")
    elif info.get("status") != "ok":
        problems.append(f"{base_dir}: the {variant} variant is unavailable here: {reason}")
    expected_task = family_for(family).peft_task_type
    for name, directory in adapters.items():
        task = PeftConfig.from_pretrained(str(directory)).task_type
        if task != expected_task:
            problems.append(f"adapter '{name}': {directory} was trained for {task}, not {expected_task}")
    if problems:
        raise UserError(problems)


def build_bundle(
    out_dir: Path,
    base_dir: Path,
    adapters: Mapping[str, Path],
    model: str,
    family: str,
    variant: str,
    evaluation: Mapping[str, Any],
    lineage: Mapping[str, Any],
    extra_files: Mapping[str, Path] = {},  # noqa: B006 - read only
) -> Manifest:
    """Copy base, adapters and extras into `out_dir`, hash every file and write the manifest.

    The bundle is assembled in a sibling temp directory and renamed into place, so `out_dir` is
    either the previous bundle or the complete new one, never half of one.
    """
    out_dir, base_dir = Path(out_dir), Path(base_dir)
    # Validate what is known before copying a byte: names, family, variant, lineage keys.
    draft = validate(
        Manifest,
        {
            "model": model,
            "family": family,
            "variant": variant,
            "adapters": list(adapters),
            "files": {},
            "evaluation": dict(evaluation),
            "lineage": dict(lineage),
        },
        f"bundle {out_dir}",
    )
    plan = _plan(base_dir, adapters, extra_files)
    _check_identity(base_dir, adapters, model, family, variant)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; it becomes the bundle a server (another user) reads
    try:
        files = {}
        for rel, source in sorted(plan.items()):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)  # follows symlinks: the bundle holds real files
            files[rel] = sha256_file(target)
        manifest = draft.model_copy(update={"files": files})
        with atomic_writer(staging / MANIFEST) as out:
            out.write(manifest.to_json())
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return read_manifest(out_dir)  # what is on disk, scalars and all, not the in-memory draft


# --- verifying and loading ---------------------------------------------------------------------------


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise UserError(f"bundle {directory}: no {MANIFEST} — not a serving bundle (build_bundle writes one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"bundle {directory}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"bundle {directory}: {MANIFEST} must be a JSON object")
    if data.get("format") != BUNDLE_FORMAT:
        raise UserError(f"bundle {directory}: format {data.get('format')!r} is not {BUNDLE_FORMAT!r}")
    return validate(Manifest, data, f"bundle {directory}/{MANIFEST}")


def verify_bundle(directory: Path) -> Manifest:
    """Recompute every sha256; a missing, changed or unlisted weight/model file refuses the bundle.

    Unlisted files are tolerated only at the top level and only if they are not weights (the
    server's reference_profile.json may be added after the build); anything under base/ or
    adapters/ changes what loads, so it must be listed.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    refuse = "— refusing to load"
    problems = []
    for rel, expected in sorted(manifest.files.items()):
        path = directory / rel
        if path.is_symlink() or (path.exists() and not path.is_file()):
            problems.append(f"bundle {directory}: {rel} is not a regular file {refuse}")
        elif not path.exists():
            problems.append(f"bundle {directory}: missing file {rel} {refuse}")
        elif sha256_file(path) != expected:
            problems.append(f"bundle {directory}: sha256 mismatch for {rel} {refuse}")
    for path in _files_under(directory):
        rel = path.relative_to(directory).as_posix()
        if rel == MANIFEST or rel in manifest.files:
            continue
        if path.is_symlink():
            problems.append(f"bundle {directory}: unlisted link {rel} {refuse}")
        elif _looks_pickled(path):
            problems.append(_pickle_problem(f"bundle {directory}", rel) + f" {refuse}")
        elif path.suffix.lower() in WEIGHT_SUFFIXES or rel.split("/", 1)[0] in (BASE_DIR, ADAPTERS_DIR):
            problems.append(f"bundle {directory}: unlisted file {rel} {refuse}")
    if problems:
        raise UserError(problems)
    return manifest


def _load_base(base: Path, manifest: Manifest) -> tuple[Any, Any, Any, Any]:
    if manifest.variant == FP32:
        from aistudio.modeling.loading import load_model_dir

        return load_model_dir(base, expect_model=manifest.model)
    try:
        from aistudio.quantization.quantize import load_variant
    except ImportError as exc:
        raise UserError(
            f"bundle variant '{manifest.variant}' needs aistudio.quantization.quantize.load_variant, "
            f"which does not import here ({exc})"
        ) from exc
    return load_variant(base, expect_model=manifest.model)


def load_bundle(directory: Path, verify: bool = True) -> LoadedBundle:
    """Load a bundle for serving; with `verify` (the default) every file is hashed first."""
    directory = Path(directory)
    manifest = verify_bundle(directory) if verify else read_manifest(directory)
    model, tokenizer, card, family = _load_base(directory / BASE_DIR, manifest)
    if card.model != manifest.model or family.name != manifest.family:
        raise UserError(
            f"bundle {directory}: base/ holds {card.model} ({family.name}), "
            f"but the manifest says {manifest.model} ({manifest.family})"
        )
    if not manifest.adapters:
        return LoadedBundle(model.eval(), tokenizer, family, manifest, ())
    from aistudio.training.adapters import AdapterSet

    adapter_dirs = {name: directory / ADAPTERS_DIR / name for name in manifest.adapters}
    served = AdapterSet.load(model, family, adapter_dirs)
    return LoadedBundle(served, tokenizer, family, manifest, tuple(manifest.adapters))
