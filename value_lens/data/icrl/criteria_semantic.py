"""The 35 semantic criteria: lexicon spans and a one-sentence insertion that satisfies each.

Each edit inserts one short, neutral sentence (from a few templates per criterion) after a random
sentence of the paragraph. The inserted words are drawn from a safe subset of the lexicon, and
the templates avoid words of other lexicons where possible; :mod:`.registry` still checks every
phrase before it uses an edit as a distractor for another criterion.
"""

from __future__ import annotations

from random import Random

from value_lens.data.icrl import _text as T
from value_lens.data.icrl.criteria_syntactic import Spec
from value_lens.data.icrl.lexicons import LEXICONS, compile_lexicon

__all__ = ["SEMANTIC"]

# name -> (templates with {w} and optional {a} for the article, safe insertion words)
_EDITS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "musical_instrument": (
        (
            "It later inspired a short piece for solo {w}.",
            "A well-known folk tune about it is usually played on the {w}.",
        ),
        ("violin", "piano", "flute", "guitar", "harp", "cello", "trumpet", "clarinet"),
    ),
    "animal": (
        ("Visitors sometimes spot {a} {w} nearby.", "Local stories often feature a clever {w}."),
        ("fox", "owl", "deer", "rabbit", "hedgehog", "badger", "otter"),
    ),
    "colour": (
        ("Its emblem is traditionally {w}.", "Early illustrations show it in shades of {w}."),
        ("blue", "green", "crimson", "purple", "yellow", "turquoise"),
    ),
    "country": (
        (
            "It has also drawn interest from scholars in {w}.",
            "Similar examples are known from {w}.",
        ),
        ("France", "Japan", "Brazil", "Kenya", "Norway", "Canada", "Portugal"),
    ),
    "food": (
        ("The local market is known for its {w}.", "Visitors are often offered fresh {w}."),
        ("bread", "cheese", "honey", "dumplings", "pancakes", "soup"),
    ),
    "body_part": (
        (
            "Early accounts describe an injury to the founder's {w}.",
            "One surviving statue shows a figure pointing with its {w}.",
        ),
        ("shoulder", "knee", "elbow", "wrist", "thumb"),
    ),
    "profession": (
        (
            "One early account was written by a local {w}.",
            "The work was later reviewed by a retired {w}.",
        ),
        ("teacher", "carpenter", "baker", "pharmacist", "librarian", "blacksmith"),
    ),
    "month": (
        ("A small celebration takes place every {w}.", "The main festival is held in {w}."),
        ("January", "April", "June", "September", "October", "December"),
    ),
    "planet": (
        (
            "Some early writers even compared it to {w}.",
            "Old almanacs link it, rather fancifully, to the planet {w}.",
        ),
        ("Venus", "Mars", "Jupiter", "Saturn", "Neptune"),
    ),
    "weekday": (
        ("A guided tour is offered every {w}.", "The archive opens to the public on {w}s."),
        ("Monday", "Tuesday", "Thursday", "Saturday", "Sunday"),
    ),
    "weather": (
        (
            "Heavy {w} once delayed the work for weeks.",
            "Reports from that period mention frequent {w}.",
        ),
        ("rain", "snow", "fog", "hail", "thunderstorms"),
    ),
    "emotion": (
        ("Many people recall the moment with {w}.", "Accounts of the time speak of great {w}."),
        ("joy", "pride", "sadness", "excitement", "gratitude", "nostalgia"),
    ),
    "family_member": (
        (
            "The earliest records were kept by a founder's {w}.",
            "Its story was first told to a young {w}.",
        ),
        ("sister", "brother", "grandmother", "uncle", "daughter", "nephew"),
    ),
    "vehicle": (
        ("Today it is easy to reach by {w}.", "Visitors usually arrive by {w}."),
        ("bus", "bicycle", "ferry", "tram", "car"),
    ),
    "flower": (
        ("Wild {w}s grow in the area each year.", "Its emblem shows a single {w}."),
        ("tulip", "daisy", "orchid", "poppy", "sunflower", "lily"),
    ),
    "tree": (
        ("An old {w} tree still marks the spot.", "Its early furniture was carved from {w} wood."),
        ("oak", "maple", "birch", "willow", "cedar", "beech"),
    ),
    "metal": (
        (
            "A commemorative plaque made of {w} marks the site.",
            "Early tools associated with it were made of {w}.",
        ),
        ("copper", "bronze", "silver", "brass", "zinc"),
    ),
    "gemstone": (
        ("A small {w} was once set into its founding plaque.", "Legend links it to a lost {w}."),
        ("ruby", "sapphire", "emerald", "diamond", "opal"),
    ),
    "sport": (
        (
            "It is also a popular venue for local {w} clubs.",
            "Nearby fields are often used for {w}.",
        ),
        ("tennis", "cricket", "rugby", "basketball", "rowing", "hockey"),
    ),
    "beverage": (
        ("Visitors are traditionally offered a cup of {w}.", "Local cafes serve {w} to visitors."),
        ("tea", "coffee", "cocoa", "lemonade"),
    ),
    "clothing": (
        (
            "Its founder is often pictured in a long {w}.",
            "Guides there still wear a traditional {w}.",
        ),
        ("coat", "cloak", "scarf", "jacket", "waistcoat"),
    ),
    "furniture": (
        (
            "An old wooden {w} from that period survives in the archive.",
            "A carved {w} is among the oldest surviving objects.",
        ),
        ("chair", "desk", "bench", "cabinet", "stool"),
    ),
    "tool": (
        (
            "A worn {w} found on site is kept in the archive.",
            "Early work relied on little more than a {w}.",
        ),
        ("hammer", "chisel", "shovel", "trowel", "mallet"),
    ),
    "city": (
        (
            "A small exhibition about it was once held in {w}.",
            "Copies of early records are kept in {w}.",
        ),
        ("Paris", "Vienna", "Lisbon", "Prague", "Dublin", "Kyoto"),
    ),
    "continent": (
        ("Similar cases are known across {w}.", "It is well known throughout {w}."),
        ("Africa", "Asia", "Europe", "South America"),
    ),
    "ocean": (
        (
            "Some early descriptions reached readers across the {w}.",
            "Comparable examples exist along the {w} coast.",
        ),
        ("Atlantic", "Pacific", "Mediterranean", "Baltic Sea"),
    ),
    "season": (
        ("It is at its busiest in {w}.", "Most visitors come in the {w}."),
        ("spring", "summer", "autumn", "winter"),
    ),
    "shape": (
        ("Its emblem is a simple {w}.", "Early plans show a layout shaped like a {w}."),
        ("circle", "triangle", "hexagon", "spiral", "pyramid"),
    ),
    "mythical_creature": (
        ("A local legend connects it to {a} {w}.", "Old tales claim that {a} {w} once guarded it."),
        ("dragon", "unicorn", "phoenix", "griffin", "mermaid"),
    ),
    "language": (
        (
            "Early descriptions of it were written in {w}.",
            "Its name has also been translated into {w}.",
        ),
        ("Latin", "Spanish", "Japanese", "Swahili", "Dutch"),
    ),
    "fruit": (
        ("Nearby orchards are known for their {w}s.", "Visitors are often offered a fresh {w}."),
        ("apple", "pear", "cherry", "plum", "apricot"),
    ),
    "dance": (
        (
            "It was once celebrated with a lively {w}.",
            "Local festivals there still end with a {w}.",
        ),
        ("waltz", "polka", "tango", "flamenco"),
    ),
    "board_game": (
        (
            "It even appears on the board of a local {w} set.",
            "Local clubs there still meet to play {w}.",
        ),
        ("chess", "backgammon", "mahjong", "dominoes"),
    ),
    "illness": (
        (
            "Work was once halted by an outbreak of {w}.",
            "Early records mention a severe outbreak of {w}.",
        ),
        ("cholera", "measles", "influenza", "typhoid", "smallpox"),
    ),
    "fabric": (
        ("Its early records were wrapped in {w}.", "A banner made of {w} still hangs there."),
        ("silk", "linen", "velvet", "wool", "cotton"),
    ),
}


def _make(name: str) -> Spec:
    description, entries = LEXICONS[name]
    rx = compile_lexicon(entries)
    templates, ws = _EDITS[name]

    def spans(text: str) -> list[tuple[int, int]]:
        return [m.span() for m in rx.finditer(text)]

    def fill(template: str, w: str) -> str:
        return template.format(w=w, a=T.article(w))

    def apply(text: str, rng: Random) -> str:
        return T.insert_sentence(text, fill(rng.choice(templates), rng.choice(ws)), rng)

    phrases = tuple(fill(t, w) for t in templates for w in ws)
    return Spec(description, spans, apply, phrases)


SEMANTIC: dict[str, Spec] = {name: _make(name) for name in LEXICONS}
