"""Words put together in the reader's language.

A list of names or counts is joined by the language's own separator: ", " in English, "、"
in Chinese, whose readers see an ASCII comma between Chinese words as a typo.
"""

from collections.abc import Iterable

from django.utils.translation import pgettext


def separator() -> str:
    """What goes between the items of a list in the reader's language."""
    return pgettext("between the items of a list", ", ")


def word_list(items: Iterable[object], limit: int | None = None) -> str:
    """ "a, b, c" in the reader's language; past `limit` items, the rest is "…"."""
    words = [str(item) for item in items]
    if limit is not None and len(words) > limit:
        words = [*words[:limit], "…"]
    return separator().join(words)
