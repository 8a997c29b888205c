"""A tiny paragraph corpus that keeps ICRL conversations short for tiny-model tests."""

SMALL_CORPUS = "\n\n".join(
    f"{topic} was built long ago. Many people visit it every year and enjoy the quiet view there"
    for topic in (
        "The river",
        "The old mill",
        "A small village",
        "The mountain pass",
        "The harbor",
        "The library",
        "The forest",
        "A stone bridge",
        "The market",
        "The lighthouse",
        "The garden",
        "The railway",
    )
)
