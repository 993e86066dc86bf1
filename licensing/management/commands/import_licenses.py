import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from aegis.core import actors
from aegis.core.commands import describe
from aegis.core.exceptions import DomainError
from licensing import services

USAGE_ERROR = 2


class Command(BaseCommand):
    help = (
        "Register licenses issued elsewhere (e.g. by the v0.8 server) so the server answers "
        "for them online. Each FILE holds one token, or one token per line ('#' starts a "
        "comment); '-' reads stdin. Every token must verify under a key in the keys folder "
        "(import the old public key first with import_public_key); expired tokens are "
        "registered too. Missing customers are created from the token. Idempotent: a token "
        "already registered is skipped. Exits 1 when any token was refused."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="Files of tokens, or '-' for stdin.")
        parser.add_argument(
            "--progress-every",
            type=int,
            default=500,
            metavar="N",
            help="Print a progress line every N tokens (default 500).",
        )

    def _tokens(self, names, stdin):
        for name in names:
            if name == "-":
                lines, label = stdin.read().splitlines(), "<stdin>"
            else:
                try:
                    lines, label = Path(name).read_text().splitlines(), name
                except (OSError, UnicodeDecodeError) as exc:
                    message = getattr(exc, "strerror", None) or "not a text file"
                    raise CommandError(
                        f"cannot read {name}: {message}", returncode=USAGE_ERROR
                    ) from None
            for number, line in enumerate(lines, start=1):
                token = line.strip()
                if token and not token.startswith("#"):
                    yield f"{label}:{number}", token

    def handle(self, *args, files, progress_every, **options):
        if progress_every < 1:
            raise CommandError("--progress-every must be at least 1", returncode=USAGE_ERROR)
        stdin = options.get("stdin") or sys.stdin
        actor = actors.for_cli()
        created = skipped = refused = seen = 0
        for where, token in self._tokens(files, stdin):
            seen += 1
            try:
                _license, is_new = services.license_import(actor=actor, token=token)
            except DomainError as exc:
                refused += 1
                self.stderr.write(f"refused {where}: {describe(exc)}")
            except DatabaseError as exc:
                raise CommandError(
                    f"database error at {where}: {exc.__class__.__name__}; "
                    f"{created} imported before it"
                ) from None
            else:
                if is_new:
                    created += 1
                else:
                    skipped += 1
            if seen % progress_every == 0:
                self.stdout.write(
                    f"... {seen} tokens: {created} imported, {skipped} already registered, "
                    f"{refused} refused"
                )
        if seen == 0:
            raise CommandError("no token found in the given files", returncode=USAGE_ERROR)
        summary = (
            f"{seen} tokens: {created} imported, {skipped} already registered, {refused} refused."
        )
        if refused:
            self.stdout.write(summary)
            raise CommandError(f"{refused} token(s) refused; see the lines above")
        self.stdout.write(self.style.SUCCESS(summary))
