"""Creative records: short scenes and poems composed from the lines in resources/creative.yaml."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from aistudio.data.sample_corpus.defects import DefectKit, distinct, prose_bait, prose_pii
from aistudio.data.sample_corpus.resources import CREATIVE, PHRASES, VOCABULARY
from aistudio.data.sample_corpus.text import (
    fill,
    mojibake,
    mojibake_text,
    recased,
    repetitive_text,
    unsafe_sentence,
    with_words_changed,
)

# --- creative: short scenes and poems -------------------------------------------------------------


@dataclass(frozen=True)
class CreativeSample:
    kind: str  # "story" | "poem"
    text: str


# Questions keep their "?"; statements before a speech tag end in a comma instead of a full stop.


def _story(rng: random.Random) -> str:
    facts = {
        "name": rng.choice(VOCABULARY.first_names),
        "job": rng.choice(VOCABULARY.occupations).replace("-", " "),
        "smell": rng.choice(VOCABULARY.smells).replace("-", " "),
        "sound": rng.choice(VOCABULARY.sounds),
    }
    target = rng.randint(70, 230)
    sentences = [fill(rng, rng.choice(CREATIVE.story_openings), facts)]
    middles = rng.sample(CREATIVE.story_middles, len(CREATIVE.story_middles))
    lines = rng.sample(
        CREATIVE.story_lines, len(CREATIVE.story_lines)
    )  # each line of dialogue at most once per story
    words = len(sentences[0].split())
    while words < target and middles:
        if rng.random() < 0.25 and lines:
            line = fill(rng, lines.pop(), facts)
            tags = CREATIVE.question_tags if line.endswith("?") else CREATIVE.statement_tags
            sentence = fill(
                rng, rng.choice(tags), {**facts, "line": line, "line_comma": line.rstrip(".") + ","}
            )
        else:
            sentence = fill(rng, middles.pop(), facts)
        sentences.append(sentence)
        words += len(sentence.split())
    sentences.append(fill(rng, rng.choice(CREATIVE.story_endings), facts))
    return " ".join(sentences)


def _poem(rng: random.Random) -> str:
    facts = {"sound": rng.choice(VOCABULARY.sounds)}
    lines = rng.sample(CREATIVE.poem_lines, rng.randint(4, 16))
    rendered = [fill(rng, line, facts) for line in lines]
    if rng.random() < 0.5:  # lowercase free verse or capitalised lines
        rendered = [line[0].lower() + line[1:] for line in rendered]
    return "\n".join(rendered)


def creative_content(sample: CreativeSample) -> str:
    return sample.text


def clean_creative(rng: random.Random, count: int) -> list[CreativeSample]:
    # Slightly more stories than poems: stories are longer and carry most of the planted defects.
    def make(i: int) -> CreativeSample:
        return CreativeSample("story", _story(rng)) if i % 20 < 11 else CreativeSample("poem", _poem(rng))

    return distinct(rng, count, make, creative_content)


def creative_with_sentence(sample: CreativeSample, sentence: str) -> CreativeSample:
    if sample.kind == "poem":
        return replace(sample, text=f"{sample.text}\n{sentence}")
    sentences = sample.text.split(". ")
    middle = len(sentences) // 2
    return replace(sample, text=". ".join(sentences[:middle] + [sentence.rstrip(".")] + sentences[middle:]))


def creative_too_short(rng: random.Random, i: int) -> CreativeSample:
    return CreativeSample(
        "story" if i % 2 == 0 else "poem", PHRASES.too_short[(i + 6) % len(PHRASES.too_short)]
    )


def creative_repetitive(rng: random.Random, i: int) -> CreativeSample:
    return CreativeSample("story" if i % 2 == 0 else "poem", repetitive_text(rng, i))


def creative_mojibake(rng: random.Random, i: int) -> CreativeSample:
    if i % 2 == 0:
        return CreativeSample("story", mojibake_text(_story(rng), rng))
    lines = _poem(rng).split("\n") + [mojibake(p) for p in rng.sample(PHRASES.mojibake_phrases, 3)]
    return CreativeSample("poem", "\n".join(lines))


def creative_unsafe(rng: random.Random, category: str) -> CreativeSample:
    kind = "poem" if category == "hate" else "story"
    base = CreativeSample(kind, _story(rng) if kind == "story" else _poem(rng))
    return creative_with_sentence(base, unsafe_sentence(category, rng))


def creative_recased(sample: CreativeSample, rng: random.Random) -> CreativeSample:
    return replace(sample, text=recased(sample.text, rng))


def creative_near_copy(sample: CreativeSample, rng: random.Random) -> CreativeSample:
    return replace(sample, text=with_words_changed(sample.text, rng, 1))


CREATIVE_KIT: DefectKit[CreativeSample] = DefectKit(
    creative_content, prose_pii(creative_with_sentence), prose_bait(creative_with_sentence),
    creative_recased, creative_near_copy, creative_too_short, creative_repetitive, creative_mojibake,
    creative_unsafe, takes_pii=lambda sample: sample.kind == "story",
)  # fmt: skip
