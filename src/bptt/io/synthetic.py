"""The demo's built-in corpus: short English sentences with person names, generated here.

Sentences come from the templates below, with slots filled at random: ``{PER}`` a person name of
one, two or three words, ``{FIRST}`` a first name, ``{SUR}`` a surname, ``{LOC}`` a place,
``{ORG}`` an organisation, ``{DAY}``, ``{MONTH}``, ``{NUM}``. Tags are IOB2: B-PER/I-PER for names,
B-LOC/I-LOC and B-ORG/I-ORG for places and organisations, O for everything else, including the
capitalised words that are not names (sentence-initial words, titles, days, months, nationalities).

The "train" and "test" splits draw first names and surnames from disjoint lists, so a tagger
scored on "test" has never seen any of its names: it must tag them from context and form.
Places and organisations are shared. The names were made up for this module or are common
generic ones; none of the names in ``DEMO_SENTENCES`` is in either list.
"""

from __future__ import annotations

import random

from ..errors import BpttError, check_choice
from .conll import Sentence

SPLITS = ("train", "test")

# first names and surnames of each split: no name is in both splits
FIRST_NAMES = {
    "train": """
        Adam Alice Amelia Arthur Beatrice Benjamin Carla Charlotte Clara Daniel David Diana Edward
        Elena Emma Felix Frances George Grace Hannah Henry Isabel Jacob Julia Karen Laura Leo Lucy
        Marcus Maria Martin Nadia Nathan Nina Oliver Oscar Paula Peter Rachel Robert Rosa Samuel
        Sarah Simon Sofia Thomas Victor Walter William Yusuf Zara Anton Bruno Camille Dmitri Ingrid
    """.split(),
    "test": """
        Abigail Albert Beatrix Cecil Cornelia Desmond Edith Eugene Florence Gideon Gwendolyn Horace
        Imogen Ivo Jasper Juniper Lionel Lorelei Magnus Matilda Mortimer Octavia Percival Philippa
        Quentin Rosalind Rufus Sylvia Tobias Ursula Wilfred Winifred Xavier Yolanda Zebedee Ottilie
    """.split(),
}
SURNAMES = {
    "train": """
        Abbott Alvarez Anderson Bauer Bennett Brooks Campbell Carter Castillo Chen Collins Cooper
        Davies Dubois Evans Fischer Fleming Foster Garcia Gray Hansen Harper Hughes Ivanov Jensen
        Kaur Keller Kowalski Larsen Lopez Martins Meyer Moreau Murphy Nakamura Novak Olsen Patel
        Perez Petrov Reyes Richter Rossi Sato Schmidt Silva Singh Sullivan Tanaka Turner Vogel
        Walsh Weber Wright Yamada Young Zimmermann
    """.split(),
    "test": """
        Ashworth Blackwood Brightwater Carrow Dunmore Elderfield Fairbrook Greenhalgh Hollowell
        Ingleby Kettering Larkspur Marchbanks Nettleford Oakhurst Pemberton Quillfeather Ravensdale
        Stonebridge Thistlewood Underhill Vantwest Whitlock Yarrowby Zennor Okonjo Valderrama
    """.split(),
}
PLACES = [
    "Paris", "London", "Berlin", "Cairo", "Lima", "Oslo", "Madrid", "Tokyo", "Nairobi", "Toronto",
    "Kenya", "Brazil", "Canada", "Norway", "Portugal", "Vietnam", "Chile", "Scotland", "Egypt",
    "New York", "San Diego", "Buenos Aires", "Hong Kong", "Cape Town", "New Zealand", "Lake Geneva",
    "Rio de Janeiro", "Mount Kenya", "the Alps", "Sydney", "Vienna", "Dublin",
]  # fmt: skip
ORGS = [
    "the United Nations", "the Red Cross", "Acme Corporation", "Northwind Bank", "the City Council",
    "the National Museum", "Globex", "Riverside Hospital", "Central University", "Bluefin Airlines",
    "the Royal Society", "Greenleaf Foods", "the Science Academy", "Harbor Shipping", "Orion Labs",
    "the Football Association", "Silverline Railways", "the Daily Courier", "Maple Insurance",
]  # fmt: skip
TITLES = ["Dr.", "Mr.", "Mrs.", "Ms.", "Professor", "President", "Captain", "Judge", "Senator"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "March", "April", "June", "August", "October", "November", "December"]
INITIALS = [c + "." for c in "ABCDEFGHJKLMNPRSTW"]

TEMPLATES = """
{PER} was born in {LOC} in {NUM} .
Yesterday {PER} met {PER} at {ORG} .
On {DAY} , {PER} flew from {LOC} to {LOC} .
The new director of {ORG} is {PER} .
According to {PER} , the talks in {LOC} went well .
{TITLE} {SUR} thanked {PER} for the English translation .
In {MONTH} {PER} joined {ORG} as an engineer .
Police in {LOC} said {PER} was not hurt .
She told {FIRST} that {PER} would arrive on {DAY} .
{PER} and {PER} won the final in {LOC} .
Fans cheered as {PER} scored twice for {LOC} .
A spokesman for {ORG} declined to comment on {PER} .
Later that week {FIRST} wrote to {TITLE} {SUR} about the French contract .
The report by {PER} was published in {MONTH} .
{ORG} hired {NUM} people in {LOC} last year .
After the meeting , {PER} said the Government would act .
Thanks to {PER} , the museum reopened in {MONTH} .
{TITLE} {PER} will visit {LOC} and {LOC} next {MONTH} .
Many people in {LOC} still remember {PER} .
It was {FIRST} who found the old map .
Neither {PER} nor {PER} attended the {DAY} session .
The German striker passed to {PER} in the last minute .
{PER} , a lawyer from {LOC} , joined {ORG} .
Every {DAY} {FIRST} walks to the station with {FIRST} .
We asked {PER} about the Spanish election .
When {PER} arrived , the Board had already voted .
Shares of {ORG} fell after {PER} resigned .
The children of {PER} live in {LOC} .
Some critics said {PER} was too cautious .
Both {FIRST} and {FIRST} agreed with {TITLE} {SUR} .
On {NUM} {MONTH} {PER} opened a bakery in {LOC} .
The prize went to {PER} of {ORG} .
Tomorrow {PER} will speak at {ORG} .
His sister {FIRST} moved to {LOC} in {NUM} .
Reporters waited outside while {PER} spoke to {PER} .
Under {PER} , {ORG} grew quickly .
The Minister praised {PER} for her work in {LOC} .
Is {FIRST} coming to the party on {DAY} ?
{PER} told reporters in {LOC} that {ORG} would appeal .
A new book by {PER} tells the story of {LOC} .
During the Summer Games {PER} broke the record .
Nobody expected {PER} to leave {ORG} so soon .
The letter from {TITLE} {SUR} reached {LOC} on {DAY} .
Doctors at {ORG} said {PER} was recovering .
Last {MONTH} , {PER} and {FIRST} travelled across {LOC} .
Thousands of Italian tourists visit {LOC} every summer .
{FIRST} , please call {TITLE} {SUR} before noon .
The coach of {LOC} named {PER} as captain .
""".strip().splitlines()

DEMO_SENTENCES = [
    "Harry Potter and Hermione Granger invented a new spell .",
    "Yesterday Marguerite Okafor flew from Paris to Lima .",
    "The new director of Globex is Tamsin Ferreira-Lund .",
    "On Monday , Dr. Bartholomew met Ines at the City Council .",
    "Winston Achterberg and his sister Philomena live in Oslo .",
]


def _name(rng, first, sur):
    """A person name of one, two or three words."""
    r = rng.random()
    if r < 0.15:
        return [rng.choice(first)]
    if r < 0.25:
        return [rng.choice(sur)]
    if r < 0.80:
        return [rng.choice(first), rng.choice(sur)]
    if r < 0.90:
        return [rng.choice(first), rng.choice(INITIALS), rng.choice(sur)]
    return [*rng.sample(first, 2), rng.choice(sur)]


def _entity(words, type_):
    """Words and IOB2 tags of one entity; a leading "the" stays outside it."""
    if words[0] == "the":
        return words, ["O"] + ["B-" + type_] + ["I-" + type_] * (len(words) - 2)
    return words, ["B-" + type_] + ["I-" + type_] * (len(words) - 1)


def _sentence(rng, template, first, sur):
    words, tags = [], []
    for tok in template.split():
        if tok == "{PER}":
            w, t = _entity(_name(rng, first, sur), "PER")
        elif tok == "{FIRST}":
            w, t = _entity([rng.choice(first)], "PER")
        elif tok == "{SUR}":
            w, t = _entity([rng.choice(sur)], "PER")
        elif tok == "{LOC}":
            w, t = _entity(rng.choice(PLACES).split(), "LOC")
        elif tok == "{ORG}":
            w, t = _entity(rng.choice(ORGS).split(), "ORG")
        elif tok == "{TITLE}":
            w, t = [rng.choice(TITLES)], ["O"]
        elif tok == "{DAY}":
            w, t = [rng.choice(DAYS)], ["O"]
        elif tok == "{MONTH}":
            w, t = [rng.choice(MONTHS)], ["O"]
        elif tok == "{NUM}":
            w, t = [str(rng.randint(1, 2024))], ["O"]
        else:
            w, t = [tok], ["O"]
        words += w
        tags += t
    words[0] = words[0][0].upper() + words[0][1:]  # "the United Nations hired ..." starts a sentence
    return words, tags


def make_corpus(n_sentences, seed, split="train"):
    """Generate ``n_sentences`` tagged sentences, the same ones for the same seed and split.

    Returns: list of Sentence with IOB2 tags; ``line`` is the sentence's 1-based index.
    """
    if isinstance(n_sentences, bool) or not isinstance(n_sentences, int) or n_sentences < 0:
        raise BpttError(f"n_sentences: expected a non-negative int, got {n_sentences!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BpttError(f"seed: expected an int, got {seed!r}")
    check_choice("split", split, SPLITS)
    rng = random.Random(f"bptt.synthetic:{split}:{seed}")  # str seeds are stable across runs
    first, sur = FIRST_NAMES[split], SURNAMES[split]
    out = []
    for i in range(n_sentences):
        words, tags = _sentence(rng, rng.choice(TEMPLATES), first, sur)
        out.append(Sentence(words, tags, i + 1))
    return out
