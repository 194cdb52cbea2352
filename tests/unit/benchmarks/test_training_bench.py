"""bench.training's comparison on a tiny Llama: every arm trains on the same tokens, TRL without padding."""

from __future__ import annotations

import math

import pytest
from bench import training as bench
from transformers import LlamaConfig, LlamaForCausalLM

from aistudio.modeling.tokenizer import train_bpe_tokenizer

SETTINGS = bench.Settings(batch_size=4, max_length=64, steps=2, eval_examples=4, rounds=1, skewed=False)

pytest.importorskip("trl", reason="trl is a dev dependency (requirements-dev.txt); bench.training needs it")


@pytest.fixture(scope="module")
def tokenizer():
    records = bench.skewed_records(64, seed=1)
    texts = [part for r in records for part in (r["instruction"], r["output"])]
    return train_bpe_tokenizer(texts, 512, 2, bench.FAMILY.special_tokens)


@pytest.fixture(scope="module")
def case(tokenizer) -> bench.Case:
    records = bench.skewed_records(64, seed=1)
    return bench.build_case("tiny", "skewed_records", records, tokenizer, SETTINGS)


def tiny_llama(tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    bench.torch.manual_seed(0)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def runs(tokenizer, case, single_torch_thread) -> dict[str, bench.ArmRun]:
    return {arm: bench.train_arm(arm, tiny_llama(tokenizer), tokenizer, case, SETTINGS) for arm in bench.ARMS}


def test_every_arm_trains_on_the_same_useful_and_target_tokens(runs, case):
    useful = sum(len(e.input_ids) for e in case.train)
    assert {r.useful_tokens for r in runs.values()} == {useful}
    assert len({r.loss_tokens for r in runs.values()}) == 1
    bench.check_same_data({arm: bench.asdict(r) for arm, r in runs.items()})


def test_every_arm_takes_the_same_number_of_optimizer_steps(runs):
    assert {r.optimizer_steps for r in runs.values()} == {SETTINGS.steps}


def test_trl_padding_free_feeds_no_padding_and_padded_batches_do(runs):
    assert runs["trl"].positions == runs["trl"].useful_tokens
    assert runs["padded"].positions > runs["padded"].useful_tokens


def test_training_moves_the_eval_loss_and_the_comparison_reports_ratios(runs):
    for run in runs.values():
        assert math.isfinite(run.eval_loss) and run.eval_loss != run.eval_loss_before
    arms = {arm: bench.summarise_arm([run]) for arm, run in runs.items()}
    result = bench.compare(arms)
    assert set(result) == {"ours_over_trl", "ours_over_padded"}
    assert all(r["tokens_per_s_ratio"] > 0 for r in result.values())
