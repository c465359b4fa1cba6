"""``compose.yaml`` and the Dockerfile against the code they run.

No Docker engine runs on the development and CI machines, so the images are not built
here; what can be checked without one is: every service's command is a real ``monitor``
command with real options, every ``MONITOR_*`` variable it sets is a real setting that
validates, and the Dockerfile installs the extras those settings need.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_roles_are_real_commands(compose: dict) -> None:
    services = compose["services"]
    assert {"api", "worker", "scheduler", "postgres", "redis"} <= set(services)
    runner = CliRunner()
    for name in ("api", "worker", "scheduler"):
        command = services[name]["command"]
        assert command[0] == "monitor"
        words = command[1:]
        sub = [w for w in words if not w.startswith("-")][:1]
        help_text = runner.invoke(app, [*sub, "--help"]).output
        assert "Usage" in help_text, (name, help_text)
        for option in (w for w in words if w.startswith("--")):
            assert option in help_text, f"{name}: {option} is not an option of {sub}"
    assert "--role" in services["api"]["command"] and "api" in services["api"]["command"]


def test_environment_names_real_settings(compose: dict, deploy: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    env = compose["x-monitor"]["environment"]
    for key, value in env.items():
        assert key.startswith("MONITOR_")
        monkeypatch.setenv(key, re.sub(r"\$\{[^}]*\}", "x" * 40, str(value)))
    settings = load_settings(deploy / "config.toml")
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.queue.broker_url == "redis://redis:6379/0"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "postgres" in dockerfile and "redis" in dockerfile, "the extras those URLs need"
