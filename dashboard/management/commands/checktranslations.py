"""`manage.py checktranslations`: fail when a message of the code is missing from a catalog.

Extracts every message the templates and Python modules translate and compares each catalog
with them: missing, untranslated and fuzzy entries, and translations whose placeholders differ,
are reported one a line and the command exits non-zero. `--update` first adds the missing
messages (untranslated, to be written) and drops those the code no longer uses.
"""

from django.core.management.base import BaseCommand, CommandError

from dashboard import translations


class Command(BaseCommand):
    help = "Check that every translated message of the code is translated in every catalog."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--update",
            action="store_true",
            help="add missing messages to the catalogs (untranslated) and drop unused ones",
        )

    def handle(self, *args, update: bool = False, **options) -> None:
        messages = translations.extract()
        found: list[str] = []
        for path in translations.catalog_paths():
            if update:
                added, dropped = translations.update(path, messages)
                self.stdout.write(f"{path}: {added} added, {dropped} dropped")
            found += translations.problems(path, messages)
        for line in found:
            self.stderr.write(line)
        if found:
            raise CommandError(f"{len(found)} messages need a translation (see above).")
        self.stdout.write(f"{len(messages)} messages, all translated.")
