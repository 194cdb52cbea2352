"""Drift features, the reference profile and the rolling monitor."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.modeling.family import CausalFamily
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.monitoring_config import DRIFT_FEATURES, DriftConfig
from aistudio.serving.drift import (
    NO_DOMAIN,
    DriftMonitor,
    build_reference_profile,
    byte_fallback_ids,
    input_features,
    load_profile,
    population_stability_index,
    profile_from_prompts,
    save_profile,
)

WORDS = "the model serves answers to questions about code data training and text quickly".split()
DOMAINS = ("code", "analysis", "summarization")


def make_prompt(rng: random.Random, words: int, digit_share: float = 0.0) -> str:
    tokens = [
        str(rng.randint(0, 99_999)) if rng.random() < digit_share else rng.choice(WORDS) for _ in range(words)
    ]
    return " ".join(tokens) + "?"


def traffic(
    seed: int, min_words: int = 5, max_words: int = 60, digit_share: float = 0.0
) -> Callable[[], dict]:
    rng = random.Random(seed)

    def next_features() -> dict:
        prompt = make_prompt(rng, rng.randint(min_words, max_words), digit_share)
        token_ids = [rng.randrange(3, 400) for _ in range(len(prompt) // 4)]
        return input_features(prompt, token_ids, unk_token_id=2, domain=rng.choice(DOMAINS))

    return next_features


@pytest.fixture(scope="module")
def profile() -> dict:
    reference = traffic(seed=0)
    return build_reference_profile(reference() for _ in range(3000))


def run(monitor: DriftMonitor, source: Callable[[], dict], n: int) -> None:
    for _ in range(n):
        monitor.observe(source())


# --- features -------------------------------------------------------------------------------------


def test_features_cover_the_configured_names_and_char_classes_add_up() -> None:
    features = input_features(
        "Hello, wörld 42!\n", [5, 2, 7, 9], unk_token_id=2, byte_fallback_ids={9}, domain="code"
    )
    assert set(features) == set(DRIFT_FEATURES)
    assert features["prompt_chars"] == 17
    assert features["token_count"] == 4
    assert features["unknown_token_rate"] == pytest.approx(2 / 4)
    assert features["digit_ratio"] == pytest.approx(2 / 17)
    assert features["whitespace_ratio"] == pytest.approx(3 / 17)
    assert features["non_ascii_ratio"] == pytest.approx(1 / 17)
    shares = ("alpha_ratio", "digit_ratio", "whitespace_ratio", "punct_ratio")
    assert sum(features[k] for k in shares) == pytest.approx(1.0)
    assert features["domain"] == "code"


@pytest.mark.parametrize("prompt", ["plain ascii: 1, 2, 3\t\x1c end", "naïve café — ½ ² 日本 🙂 \u00a0x"])
def test_ascii_fast_path_counts_like_the_str_methods(prompt: str) -> None:
    features = input_features(prompt, [])
    n = len(prompt)
    assert features["alpha_ratio"] == pytest.approx(sum(c.isalpha() for c in prompt) / n)
    assert features["digit_ratio"] == pytest.approx(sum(c.isdigit() for c in prompt) / n)
    assert features["whitespace_ratio"] == pytest.approx(sum(c.isspace() for c in prompt) / n)


def test_empty_prompt_and_missing_domain_are_well_defined() -> None:
    features = input_features("", [])
    assert (
        features["prompt_chars"] == 0 and features["unknown_token_rate"] == 0 and features["alpha_ratio"] == 0
    )
    assert features["domain"] == NO_DOMAIN


def test_byte_level_bpe_fallback_tokens_are_the_ones_that_are_not_utf8_alone() -> None:
    from aistudio.modeling.tokenizer import SpecialTokens, train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(
        ["the model serves plain english text"] * 20,
        vocab_size=300,
        min_frequency=1,
        special=SpecialTokens(pad="<pad>", eos="</s>", unk="<unk>"),
    )
    fallback = byte_fallback_ids(tokenizer.get_vocab())
    known = tokenizer.encode("the model serves text")
    unseen = tokenizer.encode("日本語のテキスト")  # never seen: spelled out byte by byte
    assert not fallback & set(known)
    assert set(unseen) <= fallback
    rate = input_features("日本語のテキスト", unseen, tokenizer.unk_token_id, fallback)["unknown_token_rate"]
    assert rate == 1.0


def test_sentencepiece_byte_tokens_count_as_fallback() -> None:
    assert byte_fallback_ids({"<0xE3>": 7, "▁the": 8, "<unk>": 0}) == {7}


# --- profile -------------------------------------------------------------------------------------


def test_profile_survives_a_json_round_trip(profile: dict, tmp_path: Path) -> None:
    path = tmp_path / "reference_profile.json"
    save_profile(profile, path)
    assert load_profile(path) == json.loads(json.dumps(profile)) == profile
    numeric = profile["numeric"]["prompt_chars"]
    assert len(numeric["proportions"]) == len(numeric["edges"]) + 1
    assert sum(numeric["proportions"]) == pytest.approx(1.0)
    assert len(numeric["reservoir"]) == 1000
    assert set(profile["categorical"]["domain"]["proportions"]) == set(DOMAINS)


def test_a_feature_that_is_almost_always_zero_keeps_its_zero_bin(profile: dict) -> None:
    digits = profile["numeric"]["digit_ratio"]  # reference prompts carry no digits at all
    assert digits["edges"][0] == 0.0
    assert digits["proportions"][0] > 0.9


def test_a_damaged_profile_is_a_user_error_naming_the_file(profile: dict, tmp_path: Path) -> None:
    path = tmp_path / "reference_profile.json"
    broken = json.loads(json.dumps(profile))
    broken["numeric"]["prompt_chars"]["proportions"].pop()
    path.write_text(json.dumps(broken))
    with pytest.raises(UserError, match=r"reference_profile.json: numeric.prompt_chars.*edges \+ 1"):
        load_profile(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_profile(path)


def test_monitor_refuses_a_profile_without_a_configured_feature(profile: dict) -> None:
    partial = {**profile, "numeric": {k: v for k, v in profile["numeric"].items() if k != "digit_ratio"}}
    with pytest.raises(UserError, match="digit_ratio"):
        DriftMonitor(partial, DriftConfig())


# --- monitor ----------------------------------------------------------------------------------------


def test_same_distribution_is_not_drift(profile: dict) -> None:
    monitor = DriftMonitor(profile, DriftConfig())
    run(monitor, traffic(seed=1), 1000)
    assert monitor.evaluations == 17  # at 200, 250, ..., 1000
    assert not monitor.detected, monitor.report()["features"]
    assert max(monitor.scores().values()) < 0.1


def test_longer_prompts_are_drift_with_psi_above_threshold(profile: dict) -> None:
    cfg = DriftConfig()
    monitor = DriftMonitor(profile, cfg)
    run(monitor, traffic(seed=2, min_words=80, max_words=200), 500)
    assert monitor.detected
    scores = monitor.scores()
    assert scores["prompt_chars"] > cfg.psi_threshold
    assert scores["token_count"] > cfg.psi_threshold
    report = monitor.report()["features"]["prompt_chars"]
    assert report["drifted"] and report["p_value"] < monitor.ks_pvalue_threshold


def test_digit_heavy_prompts_are_drift_on_the_digit_ratio(profile: dict) -> None:
    cfg = DriftConfig()
    monitor = DriftMonitor(profile, cfg)
    run(monitor, traffic(seed=3, digit_share=0.5), 500)
    assert monitor.detected
    assert monitor.scores()["digit_ratio"] > cfg.psi_threshold
    assert monitor.report()["features"]["domain"]["drifted"] is False


def test_a_new_domain_is_drift_on_the_domain_mix(profile: dict) -> None:
    source = traffic(seed=4)
    monitor = DriftMonitor(profile, DriftConfig(features=["domain"]))
    for _ in range(200):
        monitor.observe({**source(), "domain": "legal"})
    assert monitor.detected and monitor.scores()["domain"] > 1.0


def test_evaluation_runs_only_every_n_requests_once_min_samples_are_there(profile: dict) -> None:
    monitor = DriftMonitor(profile, DriftConfig(window_size=100, min_samples=40, evaluate_every=30))
    source = traffic(seed=5)
    ran = [i for i in range(1, 151) if monitor.observe(source())]
    assert ran == [60, 90, 120, 150]  # 30 is a multiple but has fewer than 40 samples
    assert monitor.evaluations == 4
    report = monitor.report()
    assert report["window_size"] == 100 and report["observed"] == 150
    assert report["reference_size"] == 3000
    assert report["last_evaluated_at"] is not None


def test_report_before_any_evaluation_is_empty_and_not_drift(profile: dict) -> None:
    monitor = DriftMonitor(profile, DriftConfig())
    run(monitor, traffic(seed=6), 10)
    report = monitor.report()
    assert report["detected"] is False and report["features"] == {} and report["last_evaluated_at"] is None
    assert monitor.scores() == {}
    json.dumps(report)  # the endpoint serves it as is


def test_report_is_json_serialisable_after_evaluation(profile: dict) -> None:
    monitor = DriftMonitor(profile, DriftConfig())
    run(monitor, traffic(seed=7), 200)
    body = json.loads(json.dumps(monitor.report()))
    assert set(body["features"]) == set(DRIFT_FEATURES)
    assert set(body["features"]["token_count"]) == {"psi", "ks_statistic", "p_value", "drifted"}


def test_psi_is_zero_for_identical_distributions_and_grows_with_the_shift() -> None:
    import numpy as np

    reference = np.array([0.25, 0.25, 0.25, 0.25])
    assert population_stability_index(reference, reference) == 0.0
    small = population_stability_index(np.array([0.3, 0.25, 0.25, 0.2]), reference)
    large = population_stability_index(np.array([0.7, 0.1, 0.1, 0.1]), reference)
    assert 0 < small < large


def test_profile_from_prompts_featurises_like_the_server() -> None:
    family = CausalFamily()
    tokenizer = train_bpe_tokenizer(
        [f"sum {i} and {i + 1}" for i in range(100)], 300, 1, family.special_tokens
    )
    prompts = [(f"sum {i} and {i * 3}", "code") for i in range(60)]
    profile = profile_from_prompts(
        prompts, lambda t: family.token_ids(tokenizer, t), tokenizer.get_vocab(), tokenizer.unk_token_id
    )
    fallback = byte_fallback_ids(tokenizer.get_vocab())
    expected = build_reference_profile(
        input_features(p, family.token_ids(tokenizer, p), tokenizer.unk_token_id, fallback, d)
        for p, d in prompts
    )
    assert profile == expected
    assert profile != build_reference_profile(
        input_features(p, family.token_ids(tokenizer, p), tokenizer.unk_token_id, fallback, "creative")
        for p, _ in prompts
    )
