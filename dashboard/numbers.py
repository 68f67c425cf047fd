"""Whole numbers read from what arrives in a URL or a form (ids, cursors, counts)."""


def whole_number(text: str | None, *, digits: int = 18) -> int | None:
    """The number `text` spells in at most `digits` ASCII digits, else None.

    str.isdigit() alone is not enough: "²" is a digit to it and no number to int() (a 500),
    and "٣" is a number to int() that no one typed on purpose in an id.
    """
    if not text or len(text) > digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
