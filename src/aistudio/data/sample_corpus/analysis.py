"""Analysis records: a question, its context and a worked answer whose numbers are computed here."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from aistudio.data.sample_corpus.defects import DefectKit, distinct, prose_bait, prose_pii
from aistudio.data.sample_corpus.resources import ANALYSIS, PHRASES, VOCABULARY
from aistudio.data.sample_corpus.text import (
    company_name,
    fill,
    mojibake_text,
    recased,
    repetitive_text,
    town_name,
    unsafe_sentence,
    with_words_changed,
)

# --- analysis: question, context, worked answer ---------------------------------------------------


@dataclass(frozen=True)
class AnalysisSample:
    question: str
    context: str
    answer: str


def _r(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def _analysis_frame(rng: random.Random, body: str, science: bool = False) -> str:
    facts = {
        "dept": rng.choice(VOCABULARY.departments),
        "industry": rng.choice(VOCABULARY.industries),
        "field": rng.choice(ANALYSIS.science_fields),
    }
    intro = fill(rng, rng.choice(ANALYSIS.science_intros if science else ANALYSIS.intros), facts)
    parts = [intro, body]
    if rng.random() < 0.6:
        parts.append(fill(rng, rng.choice(ANALYSIS.distractors), facts))
    return " ".join(parts)


def _with_caveat(rng: random.Random, answer: str) -> str:
    caveat = fill(rng, rng.choice(ANALYSIS.caveats), {}) if rng.random() < 0.7 else ""
    return f"{answer} {caveat}".strip()


def _growth(rng: random.Random) -> AnalysisSample:
    metric = rng.choice(
        (
            "revenue",
            "subscription income",
            "export sales",
            "online sales",
            "service revenue",
            "licensing income",
            "wholesale turnover",
            "membership fees",
        )
    )
    cur = rng.choice(VOCABULARY.currencies)
    y1 = rng.randint(2012, 2022)
    a = round(rng.uniform(1.5, 60), 1)
    b = round(a * (1 + rng.uniform(-0.3, 0.7)), 1)
    if b == a:
        b = round(a + 0.4, 1)
    rate = (b - a) / a
    context = _analysis_frame(
        rng, f"{metric.capitalize()} came to {a}M {cur} in {y1} and {b}M {cur} in {y1 + 1}."
    )
    question = rng.choice(
        (
            f"What is the growth rate of {metric} from {y1} to {y1 + 1}?",
            f"By what percentage did {metric} change between {y1} and {y1 + 1}?",
            f"How much did {metric} grow in relative terms over the year?",
        )
    )
    verb = "grew" if rate > 0 else "fell"
    answer = (
        f"The change is {b} - {a} = {b - a:.1f}M {cur}. Dividing by the starting value gives "
        f"{b - a:.1f} / {a} = {rate:.3f}, so {metric} {verb} by about {abs(rate) * 100:.1f}%."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _cagr(rng: random.Random) -> AnalysisSample:
    what = rng.choice(
        (
            "annual visitors",
            "active users",
            "tonnes shipped",
            "patents filed",
            "households served",
            "solar capacity in megawatts",
            "library loans",
        )
    )
    years = rng.randint(3, 9)
    start = rng.randint(1_000, 90_000)
    end = int(start * (1 + rng.uniform(0.02, 0.25)) ** years)
    y0 = rng.randint(2005, 2014)
    cagr = (end / start) ** (1 / years) - 1
    context = _analysis_frame(
        rng, f"The count of {what} rose from {start:,} in {y0} to {end:,} in {y0 + years}."
    )
    question = rng.choice(
        (
            f"What is the compound annual growth rate of {what} over the period?",
            f"Estimate the average yearly growth rate (CAGR) of {what} between {y0} and {y0 + years}.",
        )
    )
    answer = (
        f"Over {years} years the ratio is {end:,} / {start:,} = {end / start:.3f}. Taking the "
        f"{years}th root gives {(end / start) ** (1 / years):.4f}, so the CAGR is about "
        f"{cagr * 100:.1f}% per year."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _segment_share(rng: random.Random) -> AnalysisSample:
    names = rng.sample(
        (
            "retail",
            "wholesale",
            "online",
            "export",
            "services",
            "licensing",
            "catering",
            "repairs",
            "rentals",
            "training",
            "subscriptions",
            "events",
        ),
        rng.randint(3, 5),
    )
    values = [round(rng.uniform(0.4, 25), 1) for _ in names]
    cur = rng.choice(VOCABULARY.currencies)
    target = rng.randrange(len(names))
    total = sum(values)
    listing = "; ".join(f"{n}: {v}M {cur}" for n, v in zip(names, values, strict=False))
    context = _analysis_frame(rng, f"Revenue by segment last year was {listing}.")
    question = rng.choice(
        (
            f"What share of total revenue came from {names[target]}?",
            f"What percentage of the total does the {names[target]} segment represent?",
        )
    )
    answer = (
        f"Total revenue is {' + '.join(str(v) for v in values)} = {total:.1f}M {cur}. The "
        f"{names[target]} segment contributed {values[target]}M, so its share is {values[target]} / "
        f"{total:.1f} = {values[target] / total * 100:.1f}%."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _mean_series(rng: random.Random) -> AnalysisSample:
    unit, what = rng.choice(
        (
            ("kWh", "electricity use"),
            ("orders", "order volume"),
            ("mm", "rainfall"),
            ("calls", "support calls"),
            ("visits", "clinic visits"),
            ("kg", "waste collected"),
        )
    )
    months = rng.sample(VOCABULARY.months, rng.randint(4, 6))
    values = [rng.randint(40, 2_000) for _ in months]
    listing = ", ".join(f"{m} {v:,} {unit}" for m, v in zip(months, values, strict=False))
    context = _analysis_frame(rng, f"Monthly {what} was recorded as follows: {listing}.")
    question = rng.choice((f"What was the average monthly {what}?", f"Compute the mean {what} per month."))
    answer = (
        f"The sum is {sum(values):,} {unit} over {len(values)} months, so the mean is {sum(values):,} "
        f"/ {len(values)} = {sum(values) / len(values):,.1f} {unit} per month. The highest month was "
        f"{months[values.index(max(values))]} and the lowest {months[values.index(min(values))]}."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _median(rng: random.Random) -> AnalysisSample:
    what, unit = rng.choice(
        (
            ("delivery times", "hours"),
            ("response times", "minutes"),
            ("batch weights", "grams"),
            ("commute times", "minutes"),
            ("reaction times", "milliseconds"),
        )
    )
    values = [rng.randint(5, 400) for _ in range(rng.randint(5, 9))]
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    context = _analysis_frame(
        rng, f"A sample of {what} in {unit}: {', '.join(map(str, values))}.", science=rng.random() < 0.4
    )
    question = rng.choice(
        (f"What is the median of these {what}?", f"Find the median value of the sampled {what}.")
    )
    how = (
        f"the middle (position {n // 2 + 1}) value is {median}"
        if n % 2
        else f"the two middle values are {ordered[n // 2 - 1]} and {ordered[n // 2]}, whose average is "
        f"{median}"
    )
    answer = (
        f"Sorted, the {n} values are {', '.join(map(str, ordered))}. With {n} values {how} {unit}. The "
        f"mean, {sum(values) / n:.1f}, is {'above' if sum(values) / n > median else 'below'} the "
        f"median."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _ab_test(rng: random.Random) -> AnalysisSample:
    change = rng.choice(
        (
            "a shorter checkout form",
            "a new product photo layout",
            "free-shipping banners",
            "a simplified sign-up page",
            "personalised recommendations",
            "a green call-to-action button",
        )
    )
    va, vb = rng.randint(2_000, 40_000), rng.randint(2_000, 40_000)
    ca = int(va * rng.uniform(0.01, 0.12))
    cb = int(vb * rng.uniform(0.01, 0.12))
    ra, rb = ca / va, cb / vb
    context = _analysis_frame(
        rng,
        f"An A/B test compared the current page (A) with {change} (B). Variant A "
        f"had {va:,} visitors and {ca:,} conversions; variant B had {vb:,} "
        f"visitors and {cb:,} conversions.",
    )
    question = rng.choice(
        (
            "Which variant converted better, and by how much?",
            "What are the conversion rates and the relative lift of B over A?",
        )
    )
    better = "B" if rb > ra else "A"
    answer = (
        f"A converts at {ca:,} / {va:,} = {ra * 100:.2f}% and B at {cb:,} / {vb:,} = {rb * 100:.2f}%. "
        f"The absolute difference is {(rb - ra) * 100:+.2f} percentage points, a relative change of "
        f"{(rb - ra) / ra * 100:+.1f}% for B versus A, so variant {better} performed better."
    )
    answer += " A significance test should confirm the gap before rolling it out."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _break_even(rng: random.Random) -> AnalysisSample:
    product = rng.choice(VOCABULARY.nouns)
    fixed = rng.randint(20, 900) * 1_000
    price = round(rng.uniform(8, 250), 2)
    var = round(price * rng.uniform(0.3, 0.8), 2)
    cur = rng.choice(VOCABULARY.currencies)
    units = fixed / (price - var)
    context = _analysis_frame(
        rng,
        f"A new {product} line has fixed costs of {fixed:,} {cur} per year. Each unit "
        f"sells for {price} {cur} and costs {var} {cur} to make and ship.",
    )
    question = rng.choice(
        (
            "How many units must be sold to break even?",
            f"What is the break-even volume for the {product} line?",
        )
    )
    answer = (
        f"Each unit contributes {price} - {var} = {price - var:.2f} {cur} towards fixed costs. "
        f"Break-even volume is {fixed:,} / {price - var:.2f} = {units:,.1f}, so about "
        f"{int(units) + 1:,} units a year."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _margin(rng: random.Random) -> AnalysisSample:
    cur = rng.choice(VOCABULARY.currencies)
    revenue = round(rng.uniform(2, 80), 1)
    cogs = round(revenue * rng.uniform(0.35, 0.9), 1)
    opex = round((revenue - cogs) * rng.uniform(0.2, 1.1), 1)
    context = _analysis_frame(
        rng,
        f"Revenue was {revenue}M {cur}, cost of goods sold {cogs}M {cur} and operating "
        f"expenses {opex}M {cur}.",
    )
    question = rng.choice(
        (
            "What are the gross and operating margins?",
            "Compute gross margin and operating margin as percentages.",
        )
    )
    gross = revenue - cogs
    operating = gross - opex
    answer = (
        f"Gross profit is {revenue} - {cogs} = {gross:.1f}M, a gross margin of "
        f"{gross / revenue * 100:.1f}%. Subtracting operating expenses leaves {operating:.1f}M, an "
        f"operating margin of {operating / revenue * 100:.1f}%."
    )
    if operating < 0:
        answer += " The business is making an operating loss."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _per_capita(rng: random.Random) -> AnalysisSample:
    town = town_name(rng)
    pop = rng.randint(4_000, 400_000)
    what, unit = rng.choice(
        (
            ("water consumption", "litres per day"),
            ("household waste", "tonnes per year"),
            ("library budget", "EUR per year"),
            ("bus journeys", "trips per year"),
        )
    )
    total = pop * rng.uniform(0.05, 180)
    distractor = fill(rng, rng.choice(ANALYSIS.distractors), {})
    context = f"{town} has {pop:,} residents. Its total {what} is {total:,.0f} {unit}. {distractor}"
    question = rng.choice(
        (f"What is the {what} per resident in {town}?", f"Express {town}'s {what} per capita.")
    )
    answer = f"Per capita {what} is {total:,.0f} / {pop:,} = {total / pop:,.2f} {unit} per resident."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _weighted_average(rng: random.Random) -> AnalysisSample:
    commodity = rng.choice(("coffee", "cocoa", "wool", "copper", "barley", "paper pulp", "olive oil", "rice"))
    lots = [(rng.randint(5, 200), round(rng.uniform(1, 30), 2)) for _ in range(rng.randint(3, 4))]
    cur = rng.choice(VOCABULARY.currencies)
    listing = "; ".join(f"{q} tonnes at {p} {cur}/kg" for q, p in lots)
    total_q = sum(q for q, _ in lots)
    avg = sum(q * p for q, p in lots) / total_q
    context = _analysis_frame(
        rng, f"Purchases of {commodity} this {rng.choice(VOCABULARY.seasons)}: {listing}."
    )
    question = rng.choice(
        (
            "What was the weighted average price paid?",
            f"What is the volume-weighted average {commodity} price?",
        )
    )
    answer = (
        f"Weighting each price by tonnage: ({' + '.join(f'{q}x{p}' for q, p in lots)}) / {total_q} = "
        f"{sum(q * p for q, p in lots):,.2f} / {total_q} = {avg:.2f} {cur}/kg. A simple average of the "
        f"prices would give {sum(p for _, p in lots) / len(lots):.2f}, which ignores the different "
        f"volumes."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _largest_jump(rng: random.Random) -> AnalysisSample:
    what = rng.choice(
        (
            "new subscribers",
            "app downloads",
            "guest nights",
            "parcels handled",
            "trees planted",
            "tickets sold",
        )
    )
    start = rng.randrange(12)
    months = [VOCABULARY.months[(start + i) % 12] for i in range(rng.randint(5, 7))]
    values = [rng.randint(100, 9_000) for _ in months]
    diffs = [b - a for a, b in zip(values, values[1:], strict=False)]
    i = max(range(len(diffs)), key=lambda j: diffs[j])
    listing = ", ".join(f"{m}: {v:,}" for m, v in zip(months, values, strict=False))
    context = _analysis_frame(rng, f"Monthly {what}: {listing}.")
    question = rng.choice(
        (
            "Which month saw the largest increase over the previous month?",
            f"Between which consecutive months did {what} rise the most?",
        )
    )
    answer = (
        f"The month-on-month changes are {', '.join(f'{d:+,}' for d in diffs)}. The largest is "
        f"{diffs[i]:+,}, from {months[i]} ({values[i]:,}) to {months[i + 1]} ({values[i + 1]:,})."
    )
    if diffs[i] <= 0:
        answer += f" Every month declined, so {months[i + 1]} simply had the smallest drop."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _percent_error(rng: random.Random) -> AnalysisSample:
    quantity, unit, true = rng.choice(
        (
            ("the density of aluminium", "g/cm3", 2.70),
            ("the boiling point of ethanol", "C", 78.4),
            ("gravitational acceleration", "m/s2", 9.81),
            ("the speed of sound in air", "m/s", 343.0),
            ("the specific heat of water", "J/gK", 4.18),
            ("the density of copper", "g/cm3", 8.96),
        )
    )
    trials = [round(true * rng.uniform(0.9, 1.1), 2) for _ in range(rng.randint(3, 5))]
    mean = sum(trials) / len(trials)
    context = _analysis_frame(
        rng,
        f"Repeated measurements of {quantity} gave {', '.join(map(str, trials))} "
        f"{unit}. The accepted value is {true} {unit}.",
        science=True,
    )
    question = rng.choice(
        (
            "What is the percent error of the mean measurement?",
            "How far is the average result from the accepted value, in percent?",
        )
    )
    answer = (
        f"The mean is ({' + '.join(map(str, trials))}) / {len(trials)} = {mean:.3f} {unit}. Percent "
        f"error is |{mean:.3f} - {true}| / {true} x 100 = {abs(mean - true) / true * 100:.2f}%. The "
        f"spread of the trials, {min(trials)} to {max(trials)}, suggests "
        f"{'mostly random' if max(trials) - min(trials) > abs(mean - true) else 'a systematic'} error."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _expected_defects(rng: random.Random) -> AnalysisSample:
    item = rng.choice(VOCABULARY.nouns)
    rate = round(rng.uniform(0.2, 6), 2)
    batch = rng.randint(500, 80_000)
    context = _analysis_frame(
        rng,
        f"Quality control found a defect rate of {rate}% for {item} components. The "
        f"next batch holds {batch:,} units.",
    )
    question = rng.choice(
        (
            "How many defective units should be expected in the batch?",
            "Estimate the number of faulty components in the next batch.",
        )
    )
    answer = (
        f"Expected defects = {batch:,} x {rate}% = {batch:,} x {rate / 100:.4f} = "
        f"{batch * rate / 100:,.1f}, so plan for roughly {round(batch * rate / 100):,} defective "
        f"units."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _inventory_turnover(rng: random.Random) -> AnalysisSample:
    cur = rng.choice(VOCABULARY.currencies)
    cogs = round(rng.uniform(5, 120), 1)
    inv_a, inv_b = round(rng.uniform(1, 30), 1), round(rng.uniform(1, 30), 1)
    avg = (inv_a + inv_b) / 2
    turns = cogs / avg
    context = _analysis_frame(
        rng,
        f"Annual cost of goods sold was {cogs}M {cur}. Inventory was {inv_a}M {cur} at "
        f"the start of the year and {inv_b}M {cur} at the end.",
    )
    question = rng.choice(
        (
            "What is the inventory turnover, and how many days of stock does it imply?",
            "How quickly does inventory turn over?",
        )
    )
    answer = (
        f"Average inventory is ({inv_a} + {inv_b}) / 2 = {avg:.2f}M. Turnover is {cogs} / {avg:.2f} = "
        f"{turns:.2f} times a year, which is about 365 / {turns:.2f} = {365 / turns:.0f} days of stock "
        f"on hand."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _survey(rng: random.Random) -> AnalysisSample:
    topic = rng.choice(
        (
            "a new park layout",
            "extended library hours",
            "a four-day school week",
            "car-free Sundays",
            "a merged bus route",
            "a community orchard",
            "later market closing times",
        )
    )
    support, oppose, undecided = (rng.randint(20, 900) for _ in range(3))
    total = support + oppose + undecided
    context = _analysis_frame(
        rng,
        f"A survey in {town_name(rng)} asked residents about {topic}. {support} said "
        f"they support it, {oppose} oppose it and {undecided} are undecided.",
    )
    question = rng.choice(
        (
            "What percentage supports the proposal, and what is the margin over opposition?",
            "By how many percentage points does support lead or trail opposition?",
        )
    )
    s, o = support / total * 100, oppose / total * 100
    swing = undecided > abs(support - oppose)
    decisive = "enough to change the outcome" if swing else "not enough to close the gap"
    answer = (
        f"There are {total:,} responses. Support is {support} / {total} = {s:.1f}% and opposition "
        f"{oppose} / {total} = {o:.1f}%, a gap of {s - o:+.1f} points; {undecided / total * 100:.1f}% "
        f"are undecided, {decisive}."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _churn(rng: random.Random) -> AnalysisSample:
    start = rng.randint(800, 60_000)
    lost = int(start * rng.uniform(0.01, 0.2))
    new = int(start * rng.uniform(0.01, 0.3))
    context = _analysis_frame(
        rng,
        f"The quarter began with {start:,} customers. During the quarter {new:,} new "
        f"customers signed up and {lost:,} cancelled.",
    )
    question = rng.choice(
        ("What was the churn rate for the quarter?", "Compute quarterly churn and net customer growth.")
    )
    end = start + new - lost
    answer = (
        f"Churn is cancellations divided by the starting base: {lost:,} / {start:,} = "
        f"{lost / start * 100:.2f}%. The quarter ends with {start:,} + {new:,} - {lost:,} = {end:,} "
        f"customers, net growth of {(end - start) / start * 100:+.2f}%."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _speed(rng: random.Random) -> AnalysisSample:
    animal = rng.choice(
        (
            "a tagged grey seal",
            "a satellite-tracked stork",
            "a migrating eel",
            "a radio-collared wolf",
            "a monarch butterfly cohort",
            "a tagged bluefin tuna",
            "a ringed swift",
        )
    )
    km = rng.randint(40, 6_000)
    days = rng.randint(2, 60)
    context = _analysis_frame(
        rng, f"Tracking data show {animal} travelled {km:,} km in {days} days.", science=True
    )
    question = rng.choice(
        (
            "What was the average distance covered per day?",
            "Estimate the average speed in km per day and km per hour.",
        )
    )
    answer = (
        f"Average daily distance is {km:,} / {days} = {km / days:,.1f} km per day, or "
        f"{km / days / 24:.2f} km/h averaged over the whole time, rests included."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _dilution(rng: random.Random) -> AnalysisSample:
    solute = rng.choice(
        ("sodium chloride", "glucose", "copper sulfate", "ethanol", "acetic acid", "potassium nitrate")
    )
    c1 = round(rng.uniform(0.5, 6), 2)
    c2 = round(c1 * rng.uniform(0.05, 0.6), 3)
    v2 = rng.choice((100, 250, 500, 1000, 2000))
    v1 = c2 * v2 / c1
    context = _analysis_frame(
        rng,
        f"A stock solution of {solute} is {c1} mol/L. The protocol needs {v2} mL at {c2} mol/L.",
        science=True,
    )
    question = rng.choice(
        (
            "How much stock solution is needed?",
            "What volume of stock should be diluted to make the working solution?",
        )
    )
    answer = (
        f"Using C1V1 = C2V2: V1 = {c2} x {v2} / {c1} = {v1:.1f} mL of stock, topped up with "
        f"{v2 - v1:.1f} mL of solvent to reach {v2} mL."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _roi(rng: random.Random) -> AnalysisSample:
    project = rng.choice(
        (
            "warehouse automation",
            "a staff training scheme",
            "rooftop solar panels",
            "a new CRM system",
            "a marketing campaign",
            "delivery route software",
        )
    )
    cur = rng.choice(VOCABULARY.currencies)
    cost = rng.randint(20, 2_000) * 1_000
    gain = int(cost * rng.uniform(0.6, 2.5))
    years = rng.randint(1, 5)
    context = _analysis_frame(
        rng,
        f"{project.capitalize()} cost {cost:,} {cur} and is expected to return "
        f"{gain:,} {cur} in total over {years} years.",
    )
    question = rng.choice(
        (f"What is the return on investment of {project}?", "Compute the ROI and the simple annual return.")
    )
    roi = (gain - cost) / cost
    answer = (
        f"ROI = ({gain:,} - {cost:,}) / {cost:,} = {roi * 100:.1f}%. Spread evenly over {years} "
        f"year(s) that is a simple {roi / years * 100:.1f}% per year."
    )
    if roi < 0:
        answer += " The project does not pay back its cost."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _half_life(rng: random.Random) -> AnalysisSample:
    isotope = rng.choice(
        (
            "a tracer isotope",
            "iodine-131",
            "a medical contrast agent",
            "a soil pesticide",
            "caffeine in the body",
        )
    )
    half = rng.randint(2, 40)
    elapsed = half * rng.randint(1, 5) + rng.choice((0, half // 2))
    amount = rng.randint(50, 900)
    left = amount * 0.5 ** (elapsed / half)
    context = _analysis_frame(
        rng,
        f"A sample contains {amount} mg of {isotope}, which has a half-life of {half} hours.",
        science=True,
    )
    question = f"How much remains after {elapsed} hours?"
    answer = (
        f"{elapsed} hours is {elapsed / half:.2f} half-lives. Remaining = {amount} x "
        f"0.5^{elapsed / half:.2f} = {left:.1f} mg, or {left / amount * 100:.1f}% of the original."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _market_share(rng: random.Random) -> AnalysisSample:
    company = company_name(rng)
    a = round(rng.uniform(3, 40), 1)
    b = round(a + rng.uniform(-6, 8), 1)
    context = _analysis_frame(
        rng, f"{company} held {a}% of its regional market two years ago and {b}% this year."
    )
    question = rng.choice(
        (
            f"How much did {company}'s market share change?",
            "Express the change in percentage points and in relative terms.",
        )
    )
    answer = (
        f"The change is {b} - {a} = {b - a:+.1f} percentage points. Relative to the starting share "
        f"that is {(b - a) / a * 100:+.1f}%. Percentage points and percent should not be confused: the "
        f"first compares shares, the second scales by the base."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _energy_saving(rng: random.Random) -> AnalysisSample:
    site = rng.choice(
        (
            "the main depot",
            "a cold-storage warehouse",
            "the head office",
            "a bakery",
            "a school campus",
            "a data room",
        )
    )
    before = rng.randint(20_000, 900_000)
    after = int(before * rng.uniform(0.55, 0.97))
    price = round(rng.uniform(0.08, 0.35), 3)
    cur = rng.choice(VOCABULARY.currencies)
    context = _analysis_frame(
        rng,
        f"After an efficiency retrofit at {site}, annual electricity use went from "
        f"{before:,} kWh to {after:,} kWh. Power costs {price} {cur} per kWh.",
    )
    question = rng.choice(
        (
            "What is the percentage reduction and the annual saving?",
            "How much energy and money does the retrofit save each year?",
        )
    )
    saved = before - after
    answer = (
        f"Energy saved is {before:,} - {after:,} = {saved:,} kWh, a {saved / before * 100:.1f}% "
        f"reduction. At {price} {cur}/kWh that is {saved * price:,.0f} {cur} a year."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _productivity(rng: random.Random) -> AnalysisSample:
    lines = rng.sample(
        ("Line A", "Line B", "Line C", "the night shift", "the day shift", "the pilot cell"), 2
    )
    units = [rng.randint(500, 20_000) for _ in lines]
    hours = [rng.randint(40, 900) for _ in lines]
    context = _analysis_frame(
        rng,
        f"{lines[0]} produced {units[0]:,} units in {hours[0]} labour hours; "
        f"{lines[1]} produced {units[1]:,} units in {hours[1]} labour hours.",
    )
    question = rng.choice(
        (
            "Which is more productive per labour hour, and by how much?",
            "Compare units per labour hour for the two.",
        )
    )
    p = [u / h for u, h in zip(units, hours, strict=False)]
    best = 0 if p[0] > p[1] else 1
    answer = (
        f"{lines[0]} makes {units[0]:,} / {hours[0]} = {p[0]:.1f} units per hour and {lines[1]} makes "
        f"{units[1]:,} / {hours[1]} = {p[1]:.1f}. {lines[best]} is more productive by "
        f"{abs(p[0] - p[1]):.1f} units per hour ({abs(p[0] - p[1]) / min(p) * 100:.0f}% higher)."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _elasticity(rng: random.Random) -> AnalysisSample:
    product = rng.choice(
        ("a cinema ticket", "a monthly gym pass", "a bus fare", "a coffee subscription", "a paperback novel")
    )
    cur = rng.choice(VOCABULARY.currencies)
    p1 = round(rng.uniform(2, 60), 2)
    p2 = round(p1 * rng.uniform(1.03, 1.4), 2)
    q1 = rng.randint(1_000, 50_000)
    q2 = int(q1 * rng.uniform(0.5, 0.99))
    dq, dp = (q2 - q1) / q1, (p2 - p1) / p1
    e = dq / dp
    context = _analysis_frame(
        rng,
        f"When the price of {product} rose from {p1} to {p2} {cur}, monthly sales went "
        f"from {q1:,} to {q2:,}.",
    )
    question = rng.choice(
        ("What is the price elasticity of demand?", "Is demand elastic or inelastic over this price change?")
    )
    answer = (
        f"Quantity changed by {dq * 100:.1f}% and price by {dp * 100:.1f}%, so elasticity is "
        f"{dq * 100:.1f} / {dp * 100:.1f} = {e:.2f}. Since |{e:.2f}| is "
        f"{'greater' if abs(e) > 1 else 'less'} than 1, demand is "
        f"{'elastic' if abs(e) > 1 else 'inelastic'} here."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _doubling(rng: random.Random) -> AnalysisSample:
    what = rng.choice(
        (
            "the town's population",
            "the bacterial culture",
            "the fund's assets",
            "the number of charging points",
            "the bee colony count",
        )
    )
    g = round(rng.uniform(0.8, 14), 1)
    context = _analysis_frame(
        rng, f"Over recent years {what} has grown at a steady {g}% per year.", science=rng.random() < 0.5
    )
    question = rng.choice(("Roughly how long until it doubles?", f"Estimate the doubling time of {what}."))
    rule_of_70 = 70 / g
    answer = (
        f"By the rule of 70, doubling time is about 70 / {g} = {rule_of_70:.1f} years. The exact "
        f"value, ln 2 / ln(1 + {g / 100:.3f}), is close to that for rates this small."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


_ANALYSIS_TEMPLATES: tuple[Callable[[random.Random], AnalysisSample], ...] = (
    _growth, _cagr, _segment_share, _mean_series, _median, _ab_test, _break_even, _margin, _per_capita,
    _weighted_average, _largest_jump, _percent_error, _expected_defects, _inventory_turnover, _survey, _churn,
    _speed, _dilution, _roi, _half_life, _market_share, _energy_saving, _productivity, _elasticity, _doubling,
)  # fmt: skip


def analysis_content(sample: AnalysisSample) -> str:
    return "\n".join((sample.question, sample.context, sample.answer))


def clean_analysis_samples(rng: random.Random, count: int) -> list[AnalysisSample]:
    return distinct(
        rng, count, lambda i: _ANALYSIS_TEMPLATES[i % len(_ANALYSIS_TEMPLATES)](rng), analysis_content
    )


def analysis_with_sentence(sample: AnalysisSample, sentence: str) -> AnalysisSample:
    return replace(sample, context=f"{sample.context} {sentence}")


def analysis_too_short(rng: random.Random, i: int) -> AnalysisSample:
    return AnalysisSample(
        PHRASES.too_short[(i + 3) % len(PHRASES.too_short)], "", ("Yes.", "42", "Up.")[i % 3]
    )


def analysis_repetitive(rng: random.Random, i: int) -> AnalysisSample:
    return AnalysisSample("What is the trend?", repetitive_text(rng, i), repetitive_text(rng, i + 1))


def analysis_mojibake(rng: random.Random, i: int) -> AnalysisSample:
    base = rng.choice(_ANALYSIS_TEMPLATES)(rng)
    return replace(base, context=mojibake_text(base.context, rng), answer=mojibake_text(base.answer, rng))


def analysis_unsafe(rng: random.Random, category: str) -> AnalysisSample:
    return analysis_with_sentence(rng.choice(_ANALYSIS_TEMPLATES)(rng), unsafe_sentence(category, rng))


def analysis_recased(sample: AnalysisSample, rng: random.Random) -> AnalysisSample:
    return AnalysisSample(
        recased(sample.question, rng), recased(sample.context, rng), recased(sample.answer, rng)
    )


def analysis_near_copy(sample: AnalysisSample, rng: random.Random) -> AnalysisSample:
    return replace(sample, answer=with_words_changed(sample.answer, rng, 1))


ANALYSIS_KIT: DefectKit[AnalysisSample] = DefectKit(
    analysis_content, prose_pii(analysis_with_sentence), prose_bait(analysis_with_sentence),
    analysis_recased, analysis_near_copy, analysis_too_short, analysis_repetitive, analysis_mojibake,
    analysis_unsafe,
)  # fmt: skip
