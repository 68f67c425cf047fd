"""Start the whole dashboard locally: simulator, task worker and web server.

Ctrl-C (or SIGTERM) stops all three. Used by `make run`.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.core.management.base import BaseCommand, CommandError


def _wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback only)
                return True
        except urllib.error.HTTPError:
            return True  # it answered: up, even if not yet healthy
        except OSError:
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = "Run the simulator, the worker and the web server together (local demo)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--sim-port", type=int, default=int(os.environ.get("SIM_PORT", "8900")))
        parser.add_argument(
            "--servers", type=int, default=int(os.environ.get("SIM_SERVERS", "120"))
        )
        parser.add_argument("--no-simulator", action="store_true", help="Use a real cloud.")

    def handle(self, *, port: int, sim_port: int, servers: int, no_simulator: bool, **options):
        python = sys.executable
        manage = [python, "manage.py"]
        children: list[subprocess.Popen] = []

        def stop(*_args) -> None:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()

        def interrupt(*_args) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
        try:
            if not no_simulator:
                sim = [*manage, "runsim", "--host", "127.0.0.1", "--port", str(sim_port)]
                children.append(subprocess.Popen([*sim, "--servers", str(servers)]))
                if not _wait_for(f"http://127.0.0.1:{sim_port}/_sim/health", 30):
                    raise CommandError("The simulator did not start.")
            children.append(subprocess.Popen([*manage, "worker"]))
            web = [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"]
            children.append(subprocess.Popen(web))
            url = f"http://127.0.0.1:{port}/"
            if not _wait_for(f"{url}healthz", 60):
                raise CommandError("The web server did not start.")
            self.stdout.write(self.style.SUCCESS(f"\nDashboard ready: {url}  (Ctrl-C stops)\n"))
            while all(c.poll() is None for c in children):
                time.sleep(0.5)
            raise CommandError("A process exited; stopping the others.")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            stop()
