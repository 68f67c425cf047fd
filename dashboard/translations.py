"""The translation catalogs: what the code asks to translate, what locale/ answers, the .mo files.

Pure Python (Django's own template scanner plus Babel), so a machine without GNU gettext can
build and check the catalogs:

* `extract()` finds every message the templates and the dashboard's Python code pass through
  gettext: templates go through `django.utils.translation.template.templatize` (the same
  rewrite `makemessages` feeds to xgettext), Python files through Babel's extractor.
* `problems()` compares them with each catalog: a message missing, untranslated or fuzzy, or a
  translation whose placeholders differ from the original's (it would fail when rendered).
* `update()` adds missing messages (untranslated) and drops ones the code no longer uses.
* `compile_all()` writes the .mo files Django reads; they are built, never committed.
"""

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract as babel_extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from django.conf import settings
from django.utils.translation import to_locale
from django.utils.translation.template import templatize

# Django's gettext functions and their arguments: 1 is the message, 2 the plural, "c" a context.
KEYWORDS = {
    "_": None,
    "gettext": None,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext": (1, 2),
    "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "npgettext_lazy": ((1, "c"), 2, 3),
}
# Not the dashboard's words: the simulator answers as the cloud does, in the cloud's language.
SKIP_DIRS = {"migrations", "simulator", "__pycache__"}
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdifrxXeEgGc%]|\{[^{}]*\}")
DOMAIN = "django"


@dataclass
class Message:
    msgid: str
    plural: str | None = None
    context: str | None = None
    places: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.msgid, self.context)


def sources(base: Path | None = None) -> list[Path]:
    """The templates and Python modules whose messages the catalogs must hold."""
    base = base or Path(settings.BASE_DIR)
    found = sorted((base / "templates").rglob("*.html")) + sorted(
        (base / "templates").rglob("*.txt")
    )
    for path in sorted((base / "dashboard").rglob("*")):
        if path.suffix in {".py", ".html", ".txt"} and not SKIP_DIRS & set(path.parts):
            found.append(path)
    return found


def _messages_in(path: Path) -> list[tuple[int, str | tuple, str | None]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        # Outside its gettext() calls the rewrite is filler ("XXXX"); its indentation would only
        # trip Python's tokenizer.
        text = "\n".join(line.lstrip() for line in templatize(text, origin=str(path)).splitlines())
    found = babel_extract("python", io.BytesIO(text.encode("utf-8")), keywords=KEYWORDS)
    return [(lineno, message, context) for lineno, message, _comments, context in found]


def extract(base: Path | None = None) -> dict[tuple[str, str | None], Message]:
    """Every message the code translates, by (msgid, context), with where it is used."""
    base = base or Path(settings.BASE_DIR)
    messages: dict[tuple[str, str | None], Message] = {}
    for path in sources(base):
        for lineno, message, context in _messages_in(path):
            msgid, plural = (
                (message[0], message[1]) if isinstance(message, tuple) else (message, None)
            )
            if not msgid:
                continue
            found = messages.setdefault((msgid, context), Message(msgid, plural, context))
            found.plural = found.plural or plural
            found.places.append(f"{path.relative_to(base)}:{lineno}")
    return messages


def catalog_paths() -> list[Path]:
    """One django.po per language besides English (the code's own language)."""
    paths = []
    for code, _name in settings.LANGUAGES:
        if code == "en":
            continue
        for root in settings.LOCALE_PATHS:
            paths.append(Path(root) / to_locale(code) / "LC_MESSAGES" / f"{DOMAIN}.po")
    return paths


def read(path: Path) -> Catalog:
    with path.open("rb") as stream:
        return read_po(stream)


def _strings(string: str | tuple) -> tuple[str, ...]:
    return string if isinstance(string, tuple) else (string,)


def _placeholders(text: str) -> set[str]:
    return {p for p in PLACEHOLDER.findall(text) if p != "%%"}


def problems(path: Path, messages: dict | None = None) -> list[str]:
    """What keeps `path` from translating every message: one line each, empty when complete."""
    messages = extract() if messages is None else messages
    if not path.exists():
        return [f"{path}: missing; run `manage.py checktranslations --update` to start it"]
    catalog = read(path)
    found = []
    for key, message in sorted(messages.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        entry = catalog.get(*key)
        where = message.places[0]
        if entry is None:
            found.append(f"{where}: not in the catalog: {message.msgid!r}")
        elif entry.fuzzy:
            found.append(f"{where}: fuzzy in the catalog: {message.msgid!r}")
        elif not all(translations := _strings(entry.string)):
            found.append(f"{where}: untranslated: {message.msgid!r}")
        else:
            found += _format_problems(message, translations, where)
    return found


def _format_problems(message: Message, translations: tuple[str, ...], where: str) -> list[str]:
    """A translation that would fail where it is %-formatted: other placeholders, or a lone %
    (blocktranslate and Python's % need %% for a percent sign)."""
    wanted = _placeholders(message.msgid) | _placeholders(message.plural or "")
    is_format = bool(wanted) or "%%" in message.msgid
    for translation in translations:
        if _placeholders(translation) - wanted or (
            not message.plural and _placeholders(translation) != wanted
        ):
            return [f"{where}: placeholders differ: {message.msgid!r}"]
        if is_format and "%" in PLACEHOLDER.sub("", translation):
            return [f"{where}: a lone % in the translation (write %%): {message.msgid!r}"]
    return []


def update(path: Path, messages: dict | None = None) -> tuple[int, int]:
    """Add the missing messages to `path` (untranslated) and drop unused ones: (added, dropped)."""
    messages = extract() if messages is None else messages
    locale = path.parent.parent.name
    catalog = read(path) if path.exists() else _new_catalog(locale)
    added = dropped = 0
    for key, message in messages.items():
        entry = catalog.get(*key)
        msgid = (message.msgid, message.plural) if message.plural else message.msgid
        if entry is None:
            catalog.add(msgid, context=message.context, locations=_locations(message))
            added += 1
        else:
            entry.locations = _locations(message)
            if message.plural and not isinstance(entry.id, tuple):
                entry.id, entry.string = msgid, ("",)
    for entry in list(catalog):
        if entry.id and (_strings(entry.id)[0], entry.context) not in messages:
            catalog.delete(entry.id, context=entry.context)
            dropped += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        write_po(
            stream,
            catalog,
            width=100,
            sort_output=True,
            include_previous=False,
            include_lineno=False,
        )
    return added, dropped


def _new_catalog(locale: str) -> Catalog:
    return Catalog(
        locale=locale,
        project="dashboard",
        version="1",
        header_comment="# The dashboard's messages, in the words of the cloud's own console.",
        last_translator="dashboard",
        language_team=locale,
        fuzzy=False,  # a fuzzy header would leave out Plural-Forms from the .mo
    )


def _locations(message: Message) -> list[tuple[str, int]]:
    return [(place.rsplit(":", 1)[0], int(place.rsplit(":", 1)[1])) for place in message.places]


def compile_all() -> list[Path]:
    """Write each catalog's .mo beside it (fuzzy entries left out); the paths written."""
    written = []
    for path in catalog_paths():
        if not path.exists():
            continue
        target = path.with_suffix(".mo")
        with target.open("wb") as stream:
            write_mo(stream, read(path), use_fuzzy=False)
        written.append(target)
    return written
