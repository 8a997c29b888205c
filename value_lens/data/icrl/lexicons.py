"""Offline word lists for the semantic criteria, with inflections.

Each lexicon is written for this project. Lowercase entries are common nouns: they match in
lowercase or with a capital first letter (sentence start), and their plurals are generated.
Entries with a capital letter are proper names: they match exactly as written. Words that are
too ambiguous in encyclopedic prose (``back``, ``hand``, ``rose`` as in "prices rose", ``May``
as the modal verb at a sentence start) are left out or handled in :mod:`.criteria_semantic`.

Example:
    >>> sorted(inflections("wolf"))
    ['wolf', 'wolves']
    >>> "teeth" in inflections("tooth")
    True
"""

from __future__ import annotations

import re

__all__ = ["LEXICONS", "compile_lexicon", "inflections", "plural"]

_IRREGULAR = {
    "tooth": ["teeth"],
    "foot": ["feet"],
    "mouse": ["mice"],
    "goose": ["geese"],
    "ox": ["oxen"],
    "child": ["children"],
    "man": ["men"],
    "woman": ["women"],
    "wolf": ["wolves"],
    "knife": ["knives"],
    "leaf": ["leaves"],
    "loaf": ["loaves"],
    "calf": ["calves"],
    "shelf": ["shelves"],
    "thief": ["thieves"],
    "elf": ["elves"],
    "fish": ["fish", "fishes"],
    "sheep": ["sheep"],
    "deer": ["deer"],
    "moose": ["moose"],
    "salmon": ["salmon"],
    "trout": ["trout"],
    "cod": ["cod"],
    "bison": ["bison"],
    "cactus": ["cacti", "cactuses"],
    "fungus": ["fungi"],
    "wife": ["wives"],
    "scarf": ["scarves", "scarfs"],
    "hoof": ["hooves"],
    "dwarf": ["dwarves", "dwarfs"],
}


def plural(word: str) -> list[str]:
    """English plural form(s) of a (possibly multi-word) common noun."""
    head, _, last = word.rpartition(" ")
    prefix = f"{head} " if head else ""
    if last in _IRREGULAR:
        return [prefix + p for p in _IRREGULAR[last]]
    if re.search(r"(s|x|z|ch|sh)$", last):
        forms = [last + "es"]
    elif re.search(r"[^aeiou]y$", last):
        forms = [last[:-1] + "ies"]
    elif re.search(r"[^aeiou]o$", last):
        forms = [last + "es", last + "s"]
    else:
        forms = [last + "s"]
    return [prefix + f for f in forms]


def inflections(entry: str) -> set[str]:
    """All surface forms of a lexicon entry (proper names are left as written)."""
    if entry != entry.lower():
        return {entry}
    return {entry, *plural(entry)}


def compile_lexicon(entries: list[str] | tuple[str, ...]) -> re.Pattern[str]:
    """One regex matching any inflected entry as a whole word (longest form first)."""
    forms: set[str] = set()
    for e in entries:
        for f in inflections(e):
            forms.add(f)
            if f == f.lower():
                forms.add(f[0].upper() + f[1:])
    alts = sorted(forms, key=lambda s: (-len(s), s))
    body = "|".join(re.escape(a) for a in alts)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])")


def _w(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


# name -> (description of the criterion, lexicon entries)
LEXICONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "musical_instrument": (
        "mention a musical instrument",
        _w(
            "violin, viola, cello, double bass, guitar, piano, flute, clarinet, oboe, bassoon, "
            "trumpet, trombone, tuba, saxophone, harp, harpsichord, accordion, banjo, mandolin, "
            "ukulele, harmonica, xylophone, drum, tambourine, bagpipe, lute, sitar, french horn"
        ),
    ),
    "animal": (
        "mention an animal",
        _w(
            "dog, cat, horse, cow, sheep, goat, pig, lion, tiger, elephant, giraffe, zebra, wolf, "
            "fox, bear, deer, rabbit, squirrel, mouse, rat, otter, beaver, whale, dolphin, shark, "
            "owl, eagle, hawk, sparrow, parrot, penguin, swan, frog, snake, lizard, tortoise, "
            "turtle, camel, donkey, monkey, gorilla, kangaroo, koala, hedgehog, badger, moose, "
            "bison, butterfly, bee, ant, spider"
        ),
    ),
    "colour": (
        "mention a colour",
        _w(
            "red, blue, green, yellow, purple, violet, orange, pink, brown, crimson, scarlet, "
            "turquoise, indigo, magenta, beige, maroon, teal, lavender, amber, ivory, grey, gray, "
            "black, white"
        ),
    ),
    "country": (
        "mention a country",
        _w(
            "France, Germany, Italy, Spain, Portugal, Brazil, Argentina, Chile, Peru, Mexico, "
            "Canada, Japan, China, India, Russia, Egypt, Kenya, Nigeria, Ghana, Morocco, Norway, "
            "Sweden, Finland, Denmark, Poland, Greece, Ireland, Iceland, Australia, New Zealand, "
            "Vietnam, Thailand, Indonesia, Iran, Iraq, Pakistan, Turkey, Austria, Switzerland, "
            "Belgium, Netherlands, Hungary, Colombia, Cuba, South Africa, South Korea, Nepal, "
            "Ethiopia, Scotland, England, Wales, United States, Mongolia, Bolivia"
        ),
    ),
    "food": (
        "mention a food",
        _w(
            "bread, cheese, rice, pasta, noodle, soup, butter, honey, chocolate, cake, pie, "
            "sandwich, pizza, potato, tomato, carrot, onion, garlic, bean, lentil, egg, yogurt, "
            "biscuit, pancake, porridge, sausage, dumpling, salad, omelette, cookie, muffin"
        ),
    ),
    "body_part": (
        "mention a body part",
        _w(
            "shoulder, elbow, knee, ankle, wrist, finger, thumb, toe, nose, ear, eyebrow, eyelid, "
            "lip, tooth, skull, spine, lung, liver, kidney, stomach, brain, forehead, cheek, chin, "
            "hip, rib, neck, collarbone, fingernail, pelvis"
        ),
    ),
    "profession": (
        "mention a profession",
        _w(
            "teacher, doctor, nurse, lawyer, engineer, farmer, carpenter, baker, blacksmith, "
            "architect, pilot, plumber, electrician, chef, painter, scientist, historian, "
            "librarian, journalist, dentist, pharmacist, surgeon, accountant, firefighter, "
            "tailor, potter, fisherman, mechanic, astronomer, geologist, botanist"
        ),
    ),
    "month": (
        "mention a month",
        _w(
            "January, February, March, April, June, July, August, September, October, November, "
            "December"
        ),
    ),
    "planet": (
        "mention a planet",
        _w("Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus, Neptune"),
    ),
    "weekday": (
        "mention a day of the week",
        _w("Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday"),
    ),
    "weather": (
        "mention a weather phenomenon",
        _w(
            "rain, snow, hail, sleet, fog, mist, thunderstorm, thunder, lightning, drizzle, "
            "blizzard, hurricane, tornado, monsoon, rainbow, frost, heatwave, downpour, gale"
        ),
    ),
    "emotion": (
        "mention an emotion",
        _w(
            "joy, happiness, sadness, anger, fear, surprise, disgust, grief, love, jealousy, "
            "envy, pride, shame, guilt, anxiety, excitement, loneliness, delight, sorrow, "
            "gratitude, nostalgia, awe"
        ),
    ),
    "family_member": (
        "mention a family member",
        _w(
            "mother, father, sister, brother, grandmother, grandfather, aunt, uncle, cousin, "
            "niece, nephew, daughter, son, grandson, granddaughter, stepmother, stepfather, "
            "sibling, grandparent"
        ),
    ),
    "vehicle": (
        "mention a vehicle",
        _w(
            "car, bus, bicycle, motorcycle, truck, lorry, tram, airplane, "
            "helicopter, ferry, canoe, kayak, yacht, scooter, taxi, tractor, sailboat, "
            "submarine, carriage, wagon"
        ),
    ),
    "flower": (
        "mention a flower",
        _w(
            "tulip, daisy, lily, orchid, sunflower, daffodil, lotus, jasmine, lilac, poppy, "
            "marigold, dandelion, carnation, peony, chrysanthemum, hyacinth, magnolia, roses"
        ),
    ),
    "tree": (
        "mention a kind of tree",
        _w(
            "oak, maple, birch, willow, pine, cedar, spruce, elm, beech, chestnut, sycamore, "
            "cypress, redwood, sequoia, baobab, eucalyptus, mahogany, poplar, yew, fir"
        ),
    ),
    "metal": (
        "mention a metal",
        _w(
            "iron, copper, silver, gold, aluminium, aluminum, zinc, nickel, platinum, titanium, "
            "tin, bronze, brass, steel, mercury, cobalt, chromium, magnesium"
        ),
    ),
    "gemstone": (
        "mention a gemstone",
        _w(
            "diamond, ruby, sapphire, emerald, opal, topaz, amethyst, garnet, jade, pearl, "
            "turquoise, aquamarine, onyx, quartz"
        ),
    ),
    "sport": (
        "mention a sport",
        _w(
            "football, soccer, tennis, basketball, baseball, cricket, rugby, golf, hockey, "
            "volleyball, swimming, cycling, boxing, wrestling, fencing, rowing, skiing, "
            "badminton, archery, gymnastics, marathon"
        ),
    ),
    "beverage": (
        "mention a drink",
        _w(
            "tea, coffee, milk, juice, lemonade, wine, beer, cider, whisky, whiskey, vodka, "
            "champagne, cocoa, smoothie, espresso, cappuccino, soda"
        ),
    ),
    "clothing": (
        "mention an item of clothing",
        _w(
            "shirt, trousers, jeans, skirt, dress, coat, jacket, sweater, scarf, glove, hat, "
            "sock, shoe, boot, sandal, cloak, gown, apron, waistcoat, kimono, sari"
        ),
    ),
    "furniture": (
        "mention a piece of furniture",
        _w(
            "chair, table, sofa, couch, bed, wardrobe, bookshelf, stool, bench, desk, cupboard, "
            "dresser, armchair, cabinet, sideboard, hammock"
        ),
    ),
    "tool": (
        "mention a tool",
        _w(
            "hammer, screwdriver, wrench, spanner, chisel, pliers, shovel, spade, rake, axe, "
            "trowel, crowbar, mallet, sickle, scythe, pickaxe, hoe, anvil"
        ),
    ),
    "city": (
        "mention a city",
        _w(
            "Paris, London, Tokyo, Rome, Berlin, Madrid, Moscow, Cairo, Sydney, Toronto, Mumbai, "
            "Beijing, Istanbul, Vienna, Prague, Lisbon, Athens, Dublin, Nairobi, Lima, Oslo, "
            "Stockholm, Chicago, Boston, Venice, Florence, Kyoto, Seoul, Bangkok, Buenos Aires, "
            "New York, Los Angeles, Amsterdam, Edinburgh"
        ),
    ),
    "continent": (
        "mention a continent",
        _w("Africa, Asia, Europe, Antarctica, Australia, North America, South America, Oceania"),
    ),
    "ocean": (
        "mention an ocean or sea",
        _w(
            "Atlantic, Pacific, Indian Ocean, Arctic Ocean, Southern Ocean, Mediterranean, "
            "Caribbean, Baltic Sea, North Sea, Black Sea, Red Sea, Caspian Sea, Dead Sea"
        ),
    ),
    "season": ("mention a season", _w("spring, summer, autumn, winter")),
    "shape": (
        "mention a geometric shape",
        _w(
            "circle, triangle, rectangle, pentagon, hexagon, octagon, oval, sphere, cube, "
            "pyramid, cylinder, cone, spiral, rhombus, trapezoid"
        ),
    ),
    "mythical_creature": (
        "mention a mythical creature",
        _w(
            "dragon, unicorn, phoenix, griffin, mermaid, centaur, minotaur, goblin, troll, fairy, "
            "werewolf, vampire, sphinx, kraken, cyclops, pegasus, gnome, ogre"
        ),
    ),
    "language": (
        "mention a language",
        _w(
            "English, French, German, Spanish, Italian, Portuguese, Russian, Mandarin, Japanese, "
            "Arabic, Hindi, Swahili, Latin, Greek, Dutch, Korean, Turkish, Polish, Welsh, "
            "Gaelic, Sanskrit, Esperanto"
        ),
    ),
    "fruit": (
        "mention a fruit",
        _w(
            "apple, pear, banana, cherry, grape, lemon, lime, mango, peach, plum, apricot, "
            "strawberry, raspberry, blueberry, pineapple, watermelon, melon, kiwi, coconut, "
            "pomegranate, papaya"
        ),
    ),
    "dance": (
        "mention a dance",
        _w(
            "waltz, tango, salsa, ballet, polka, flamenco, foxtrot, samba, rumba, minuet, "
            "quadrille, cha-cha, hula, breakdance, jig, mazurka"
        ),
    ),
    "board_game": (
        "mention a board or card game",
        _w(
            "chess, checkers, draughts, backgammon, poker, solitaire, dominoes, mahjong, "
            "Scrabble, Monopoly, Cluedo, bingo"
        ),
    ),
    "illness": (
        "mention an illness",
        _w(
            "influenza, flu, measles, malaria, cholera, tuberculosis, smallpox, asthma, "
            "diabetes, pneumonia, bronchitis, migraine, arthritis, typhoid, mumps, chickenpox, "
            "scurvy, leprosy, plague"
        ),
    ),
    "fabric": (
        "mention a fabric",
        _w(
            "cotton, silk, wool, linen, velvet, denim, satin, polyester, nylon, cashmere, "
            "tweed, flannel, corduroy, muslin, chiffon, lace"
        ),
    ),
}
