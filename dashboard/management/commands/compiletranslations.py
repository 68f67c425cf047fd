"""`manage.py compiletranslations`: build the .mo files Django reads from locale/'s .po sources.

Pure Python, so `make run` and `make test` need no GNU gettext on the machine.
"""

from django.core.management.base import BaseCommand

from dashboard import translations


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/django.po into the .mo files Django reads."

    def handle(self, *args, **options) -> None:
        for path in translations.compile_all():
            self.stdout.write(f"compiled {path}")
