"""Summarization records: news articles built from drawn facts, and summaries from the same facts."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

from aistudio.data.sample_corpus.defects import DefectKit, distinct, prose_bait, prose_pii
from aistudio.data.sample_corpus.resources import ARTICLES, PHRASES, VOCABULARY
from aistudio.data.sample_corpus.text import (
    company_name,
    expand,
    fill,
    join_and,
    mojibake,
    mojibake_text,
    person_name,
    recased,
    repetitive_text,
    street_name,
    town_name,
    unsafe_sentence,
    with_words_changed,
)

# --- summarization: articles built from facts, summaries from the same facts ----------------------


@dataclass(frozen=True)
class ArticleSample:
    title: str
    article: str
    summary: str


@dataclass(frozen=True)
class _Topic:
    """A news story shape. Lead and key sentences always appear, so a summary built from the same
    facts can only state what the article says; body sentences are sampled for length and variety."""

    facts: Callable[[random.Random], dict[str, str]]
    titles: tuple[str, ...]
    leads: tuple[str, ...]
    keys: tuple[str, ...]
    body: tuple[str, ...]
    summaries: tuple[str, ...]


def _council_facts(rng: random.Random) -> dict[str, str]:
    project, short = rng.choice((
        ("a pedestrian bridge over the River {river}", "the footbridge"),
        ("a new public library on {street}", "the library"),
        ("protected cycle lanes along {street}", "the cycle lanes"),
        ("a covered market hall beside the station", "the market hall"),
        ("a flood barrier along the harbour front", "the flood barrier"),
        ("a community solar farm on the old airfield", "the solar farm"),
        ("a youth sports centre on {street}", "the sports centre"),
        ("the restoration of the old corn exchange", "the restoration"),
        ("a tram extension to the hospital", "the tram extension"),
        ("a heat network for council housing", "the heat network"),
    ))  # fmt: skip
    votes_for = rng.randint(14, 40)
    street = street_name(rng)
    return {
        "town": town_name(rng), "street": street, "river": rng.choice(VOCABULARY.rivers),
        "project": project.format(river=rng.choice(VOCABULARY.rivers), street=street), "project_short": short,
        "votes_for": str(votes_for), "votes_against": str(rng.randint(1, votes_for - 2)),
        "budget": f"{rng.uniform(0.8, 95):.1f}", "currency": rng.choice(VOCABULARY.currencies),
        "year_done": str(rng.randint(2026, 2033)),
        "start_month": rng.choice(VOCABULARY.months),
        "councillor": person_name(rng), "opponent": person_name(rng),
        "hours": str(rng.randint(2, 7)),
        "benefit": rng.choice(("bring more visitors into the centre",
                               "cut journey times for thousands of commuters",
                               "protect low-lying streets from winter floods",
                               "give teenagers somewhere safe to go", "lower heating bills for tenants",
                               "revive a neglected corner of town")),
        "alt": rng.choice(("road repairs", "social care", "school buildings", "street lighting",
                           "bus subsidies")),
        "mitigation": rng.choice(("double glazing", "free parking permits", "noise monitoring",
                                  "a hotline for complaints")),
    }  # fmt: skip


def _festival_facts(rng: random.Random) -> dict[str, str]:
    town = town_name(rng)
    theme = rng.choice(
        (
            "Lantern",
            "Harvest",
            "Kite",
            "Folk Music",
            "Street Food",
            "Storytelling",
            "Jazz",
            "Puppet",
            "Cider",
            "Glassblowing",
        )
    )
    return {
        "town": town, "festival": f"the {town} {theme} Festival",
        "visitors": f"{rng.randint(3, 90) * 1000:,}",
        "days": str(rng.randint(2, 5)), "raised": f"{rng.randint(5, 300) * 1000:,}",
            "currency": rng.choice(VOCABULARY.currencies),
        "cause": rng.choice(("the local hospice", "a new lifeboat", "school music lessons", "the food bank",
                             "flood relief", "restoring the bandstand")),
        "founded": str(rng.randint(1951, 2015)), "organiser": person_name(rng), "street": street_name(rng),
        "headline": expand(rng, rng.choice(("a brass band from {town2}",
                                             "a lantern procession across the harbour", "a {adj} puppet show",
                                             "a cookery contest judged by {person}",
                                             "fireworks over the {noun}"))),
        "supply": rng.choice(("programmes", "paper cups", "parking space", "bread", "volunteer T-shirts")),
    }  # fmt: skip


def _earnings_facts(rng: random.Random) -> dict[str, str]:
    change = rng.uniform(-18, 35)
    quarter = rng.choice(("first", "second", "third", "fourth"))
    return {
        "company": company_name(rng), "industry": rng.choice(VOCABULARY.industries), "town": town_name(rng),
        "quarter_long": f"{quarter} quarter of {rng.randint(2019, 2025)}", "quarter": quarter,
        "revenue": f"{rng.uniform(12, 2400):.1f}", "currency": rng.choice(VOCABULARY.currencies),
        "direction": "up" if change >= 0 else "down", "change": f"{abs(change):.1f}",
        "profit": f"{rng.uniform(0.5, 180):.1f}", "ceo": person_name(rng),
        "driver": rng.choice(("strong demand in export markets", "lower energy costs",
                              "a price increase in the spring", "the sale of a loss-making unit",
                              "higher volumes at its new plant")),
        "outlook": rng.choice(("slower growth for the rest of the year", "demand to stay firm into next year",
                               "margins to improve as costs ease",
                               "a difficult winter for its retail customers")),
        "share_move": rng.choice(("rose", "fell")), "share_pct": f"{rng.uniform(0.4, 9):.1f}",
    }  # fmt: skip


def _launch_facts(rng: random.Random) -> dict[str, str]:
    series = rng.choice(("X", "S", "Mini", "Pro", "One", "Go", "Trail"))
    model = f"{rng.choice(VOCABULARY.company_heads)} {series}{rng.randint(1, 9)}"
    return {
        "company": company_name(rng), "product": model,
        "category": rng.choice(("e-bike", "water filter", "smart thermostat", "hiking boot",
                                "espresso grinder", "children's tablet", "electric outboard motor",
                                "solar lantern", "cargo trailer", "sleeping bag")),
        "price": f"{rng.randint(19, 2900)}", "currency": rng.choice(VOCABULARY.currencies),
            "launch_month": rng.choice(VOCABULARY.months),
        "feature1": rng.choice(("a replaceable battery", "a recycled aluminium frame", "an app-free setup",
                                "a ten-year guarantee")),
        "feature2": rng.choice(("weatherproof seals", "a modular design", "low standby power",
                                "a weight under two kilograms")),
        "designer": person_name(rng), "town2": town_name(rng), "markets": join_and(rng.sample(
            ["Norway", "Portugal", "Canada", "Kenya", "Japan", "Chile", "Ireland", "Poland"], 3)),
    }  # fmt: skip


def _expansion_facts(rng: random.Random) -> dict[str, str]:
    return {
        "company": company_name(rng), "site": town_name(rng),
        "facility": rng.choice(("distribution centre", "battery plant", "research laboratory",
                                "industrial bakery", "customer service centre", "recycling plant",
                                "training campus")),
        "jobs": f"{rng.randint(40, 1800):,}", "investment": f"{rng.uniform(4, 600):.0f}",
            "currency": rng.choice(VOCABULARY.currencies),
        "open_year": str(rng.randint(2026, 2031)), "official": person_name(rng),
        "former": rng.choice(("a disused rail yard", "former farmland", "the old brickworks",
                              "an empty retail park")),
        "green_feature": rng.choice(("solar panels on the roof", "rainwater harvesting",
                                     "a wildlife corridor", "heat pumps")),
    }  # fmt: skip


def _study_facts(rng: random.Random) -> dict[str, str]:
    finding, short = rng.choice((
        ("people who walked at least {n} minutes a day slept better", "daily walking to better sleep"),
        ("children who read aloud every day built their vocabulary faster",
         "reading aloud to faster vocabulary growth"),
        ("bees exposed to street lighting visited fewer flowers", "street lighting to fewer bee visits"),
        ("office workers near windows reported fewer headaches", "window seats to fewer headaches"),
        ("regular gardeners had more varied gut bacteria", "gardening to varied gut bacteria"),
        ("students who took handwritten notes remembered more a week later",
         "handwritten notes to better recall"),
        ("cows given access to rotating brushes produced more milk", "cow brushes to higher milk yields"),
        ("older adults who sang in choirs reported less loneliness", "choir singing to less loneliness"),
    ))  # fmt: skip
    town = town_name(rng)
    return {
        "institution": rng.choice((f"the University of {town}", f"the {town} Institute of Technology",
                                   f"{town} Medical School")),
        "finding": finding.format(n=rng.randint(20, 45)), "short": short,
            "participants": f"{rng.randint(80, 12000):,}",
        "duration": str(rng.randint(3, 36)), "effect": str(rng.randint(4, 40)), "author": person_name(rng),
        "journal": rng.choice(("Journal of Applied Wellbeing", "Northern Review of Ecology",
                               "Annals of Everyday Science", "Bulletin of Field Studies",
                               "Quarterly Journal of Behaviour")),
        "confounder": rng.choice(("smoking", "diet", "commuting distance", "prior health", "screen time")),
    }  # fmt: skip


def _discovery_facts(rng: random.Random) -> dict[str, str]:
    find = rng.choice(
        (
            "a new species of ground beetle",
            "a previously unknown orchid",
            "the wreck of a nineteenth-century schooner",
            "a hoard of Bronze Age bracelets",
            "a trail of fossil footprints",
            "a painted cave chamber",
            "a Roman milestone",
            "a colony of rare freshwater mussels",
        )
    )
    institution = rng.choice(
        (f"the University of {town_name(rng)}", "the national museum", f"the {town_name(rng)} Field Society")
    )
    return {
        "find": find, "town": town_name(rng), "institution": institution,
        "age": rng.choice(("150", "2,800", "3,500", "1,900", "40,000", "120")),
        "decades": str(rng.randint(2, 9)),
        "finder": person_name(rng),
        "place": rng.choice(("a flooded quarry", "a hillside farm", "the tidal flats", "a limestone ridge")),
    }  # fmt: skip


def _storm_facts(rng: random.Random) -> dict[str, str]:
    return {
        "name": rng.choice(VOCABULARY.first_names), "town": town_name(rng), "rain": str(rng.randint(40, 220)),
        "wind": str(rng.randint(70, 160)),
        "homes": str(rng.randint(12, 1400)), "outage": f"{rng.randint(300, 60000):,}",
            "weeks": str(rng.randint(2, 14)),
        "river": rng.choice(VOCABULARY.rivers), "official": person_name(rng),
            "road": f"the {rng.choice(('A', 'B'))}{rng.randint(10, 999)}",
    }  # fmt: skip


def _heat_facts(rng: random.Random) -> dict[str, str]:
    return {
        "town": town_name(rng), "temp": f"{rng.uniform(33, 44):.1f}", "days": str(rng.randint(4, 16)),
        "old_record": f"{rng.uniform(30, 38):.1f}", "old_year": str(rng.randint(1976, 2019)),
        "reservoir": str(rng.randint(18, 55)), "official": person_name(rng),
        "admissions": str(rng.randint(20, 600)),
    }  # fmt: skip


def _drought_facts(rng: random.Random) -> dict[str, str]:
    return {
        "town": town_name(rng), "rain_pct": str(rng.randint(12, 60)), "months": str(rng.randint(3, 11)),
        "reservoir": str(rng.randint(15, 48)), "utility": f"{town_name(rng)} Water",
        "official": person_name(rng), "ban_date": f"{rng.randint(1, 28)} {rng.choice(VOCABULARY.months)}",
        "farmers": f"{rng.randint(40, 900):,}",
    }  # fmt: skip


def _article_sentences(
    rng: random.Random, topic: _Topic, facts: dict[str, str], target_words: int
) -> list[str]:
    sentences = [fill(rng, rng.choice(topic.leads), facts)] + [fill(rng, k, facts) for k in topic.keys]
    pool = list(topic.body) + rng.sample(ARTICLES.generic_body, 5)
    rng.shuffle(pool)
    words = sum(len(s.split()) for s in sentences)
    while words < target_words:
        if pool and rng.random() < 0.8:
            sentence = fill(rng, pool.pop(), facts)
        else:
            quote = fill(rng, rng.choice(ARTICLES.quotes), facts)
            sentence = fill(rng, rng.choice(ARTICLES.quote_frames), {**facts, "quote": quote})
        if words + len(sentence.split()) > 395:
            break
        sentences.append(sentence)
        words += len(sentence.split())
    return sentences


def _paragraphs(rng: random.Random, sentences: list[str]) -> str:
    paragraphs, i = [], 0
    while i < len(sentences):
        size = rng.choice((1, 2, 2, 3))
        paragraphs.append(" ".join(sentences[i : i + size]))
        i += size
    return "\n\n".join(paragraphs)


def _article_sample(rng: random.Random, topic: _Topic) -> ArticleSample:
    facts = topic.facts(rng)
    sentences = _article_sentences(rng, topic, facts, rng.randint(140, 370))
    title = fill(rng, rng.choice(topic.titles), facts)
    summary = fill(rng, rng.choice(topic.summaries), facts)
    return ArticleSample(title, _paragraphs(rng, sentences), summary)


def article_content(sample: ArticleSample) -> str:
    return "\n".join((sample.title, sample.article, sample.summary))


def clean_articles(rng: random.Random, count: int) -> list[ArticleSample]:
    return distinct(rng, count, lambda i: _article_sample(rng, topics()[i % len(topics())]), article_content)


def article_with_sentence(sample: ArticleSample, sentence: str) -> ArticleSample:
    paragraphs = sample.article.split("\n\n")
    at = len(paragraphs) // 2
    paragraphs.insert(at, sentence)
    return replace(sample, article="\n\n".join(paragraphs))


def article_too_short(rng: random.Random, i: int) -> ArticleSample:
    return ArticleSample("Note", PHRASES.too_short[(i + 5) % len(PHRASES.too_short)], "-")


def article_repetitive(rng: random.Random, i: int) -> ArticleSample:
    return ArticleSample("Update", repetitive_text(rng, i), "Nothing new.")


def article_mojibake(rng: random.Random, i: int) -> ArticleSample:
    base = _article_sample(rng, rng.choice(topics()))
    return replace(
        base, title=mojibake(base.title + " — café edition"), article=mojibake_text(base.article, rng)
    )


def article_unsafe(rng: random.Random, category: str) -> ArticleSample:
    return article_with_sentence(_article_sample(rng, rng.choice(topics())), unsafe_sentence(category, rng))


def article_recased(sample: ArticleSample, rng: random.Random) -> ArticleSample:
    return ArticleSample(
        recased(sample.title, rng), recased(sample.article, rng), recased(sample.summary, rng)
    )


def article_near_copy(sample: ArticleSample, rng: random.Random) -> ArticleSample:
    return replace(sample, article=with_words_changed(sample.article, rng, rng.randint(1, 2)))


_FACTS: dict[str, Callable[[random.Random], dict[str, str]]] = {
    "council": _council_facts,
    "festival": _festival_facts,
    "earnings": _earnings_facts,
    "launch": _launch_facts,
    "expansion": _expansion_facts,
    "study": _study_facts,
    "discovery": _discovery_facts,
    "storm": _storm_facts,
    "heat": _heat_facts,
    "drought": _drought_facts,
}


@cache
def topics() -> tuple[_Topic, ...]:
    """The story shapes of resources/articles.yaml, each with the function that draws its facts."""
    return tuple(
        _Topic(_FACTS[t["facts"]], t["titles"], t["leads"], t["keys"], t["body"], t["summaries"])
        for t in ARTICLES.topics
    )


ARTICLE_KIT: DefectKit[ArticleSample] = DefectKit(
    article_content, prose_pii(article_with_sentence), prose_bait(article_with_sentence),
    article_recased, article_near_copy, article_too_short, article_repetitive, article_mojibake,
    article_unsafe,
)  # fmt: skip
