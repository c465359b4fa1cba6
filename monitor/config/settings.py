"""Typed, frozen settings: the only module that reads ``config.toml`` and ``MONITOR_*``.

Precedence, highest first: environment (``MONITOR_SECTION__KEY``, e.g.
``MONITOR_CLIP__REQUIRED=true``), then ``config.toml``, then the defaults of the
section models (:mod:`.decode`, :mod:`.stages`, :mod:`.outcome`, :mod:`.daemon` and the
others imported below).
The deployment root is the folder holding ``config.toml`` (``MONITOR_CONFIG``
names the file; otherwise ``./config.toml``, which may be absent). Relative
paths in the settings are resolved against that root.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.config.daemon import (
    AlertSettings,
    FetchSettings,
    ServerSettings,
    SmtpSettings,
    SourceSettings,
)
from monitor.config.decode import DecodeSettings
from monitor.config.outcome import ReportSettings, RulesSettings
from monitor.config.queue import QueueSettings
from monitor.config.retrieval import RetrievalSettings
from monitor.config.stages import ClipSettings, DescriptorSettings, HashSettings, LocalSettings
from monitor.config.storage import StorageSettings
from monitor.errors import ConfigError


class Settings(BaseSettings):
    """All settings. Build with :func:`load_settings`; instances are frozen."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    root: Path = Field(Path("."), description="Deployment root (folder of config.toml).")
    storage: StorageSettings = StorageSettings()
    decode: DecodeSettings = DecodeSettings()
    hash: HashSettings = HashSettings()
    clip: ClipSettings = ClipSettings()
    descriptor: DescriptorSettings = DescriptorSettings()
    local: LocalSettings = LocalSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    queue: QueueSettings = QueueSettings()
    rules: RulesSettings = RulesSettings()
    report: ReportSettings = ReportSettings()
    server: ServerSettings = ServerSettings()
    fetch: FetchSettings = FetchSettings()
    smtp: SmtpSettings = SmtpSettings()
    alerts: AlertSettings = AlertSettings()
    sources: list[SourceSettings] = Field(default_factory=list,
                                          description="Places to watch ([[sources]] tables).")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the TOML values passed as init arguments."""
        return env_settings, init_settings

    def path(self, value: str) -> Path:
        """Resolve a configured path against the deployment root."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)

    def secret(self, value: SecretStr, file: str) -> str:
        """A secret from its ``SecretStr`` setting, or else from the file named by ``file``.

        Raises:
            ConfigError: ``file`` is set but cannot be read.
        """
        if value.get_secret_value():
            return value.get_secret_value()
        if not file:
            return ""
        try:
            return self.path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {file}: {exc}") from exc

    def source(self, name: str) -> SourceSettings | None:
        """The ``[[sources]]`` entry called ``name``."""
        return next((s for s in self.sources if s.name == name), None)

    @property
    def data_dir(self) -> Path:
        """Absolute data folder (database, indices, evidence)."""
        return self.path(self.storage.data_dir)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in force."""
        return self.storage.database_url or f"sqlite:///{self.data_dir / 'monitor.db'}"


def config_path() -> Path:
    """The config file in force: ``$MONITOR_CONFIG`` or ``./config.toml``."""
    return Path(os.environ.get("MONITOR_CONFIG", "config.toml")).expanduser().absolute()


def load_settings(path: Path | None = None) -> Settings:
    """Read ``path`` (default :func:`config_path`; absence is fine) and the environment.

    Raises:
        ConfigError: the TOML cannot be parsed or a value fails validation; the
            message names the file and the dotted key.
    """
    path = path or config_path()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    data.setdefault("root", path.parent)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def _problem(error: Any) -> str:
    """One validation error as ``dotted.key: message``; an unknown key gets the nearest
    known one (difflib) as "did you mean"."""
    loc = [str(p) for p in error["loc"]]
    text = f"{'.'.join(loc)}: {error['msg']}"
    if error["type"] != "extra_forbidden":
        return text
    model: Any = Settings
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return text
        model = field.annotation
    import difflib

    known = list(getattr(model, "model_fields", {}))
    near = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    hint = f"did you mean {'.'.join([*loc[:-1], near[0]])}?" if near else (
        f"known keys here: {', '.join(k for k in known if k != 'root')}")
    return f"{'.'.join(loc)}: unknown key; {hint}"


def _toml_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return '""'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def default_toml() -> str:
    """A commented ``config.toml`` listing every key with its default and help line."""
    lines = ["# monitor configuration. Every key is optional; shown with its default.",
             "# Environment variables override it: MONITOR_<SECTION>__<KEY>=value.", ""]
    for name, field in Settings.model_fields.items():
        if name in ("root", "sources"):
            continue
        section = field.default
        lines += [f"# {type(section).__doc__.strip()}", f"[{name}]"]
        for key, sub in type(section).model_fields.items():
            if name == "server" and key == "keys":  # an array of tables: example at the end
                lines.append(f"# {sub.description} (example at the end of this file)")
                continue
            lines += [f"# {sub.description}", f"{key} = {_toml_value(getattr(section, key))}"]
        lines.append("")
    return "\n".join(lines + _sources_example() + _keys_example())


def _keys_example() -> list[str]:
    return ["# More API keys, one [[server.keys]] table each (commented out here):",
            "# [[server.keys]]", '# id = "crawler-2026"', '# name = "shop crawler"',
            '# scopes = ["submit"]          # submit, search, read, review, gallery',
            '# secret_env = "MONITOR_KEY_CRAWLER"   # or secret_file = "crawler.key"', ""]


def _sources_example() -> list[str]:
    lines = ["# Places to watch: one [[sources]] table each (all commented out here).",
             "# " + " ".join((SourceSettings.__doc__ or "").split())]
    for key, sub in SourceSettings.model_fields.items():
        lines.append(f"#   {key}: {sub.description}")
    lines += ["# [[sources]]", '# name = "shop"', '# kind = "page"',
              '# location = "https://shop.example/"', "# depth = 2", "# interval = 3600", ""]
    return lines
