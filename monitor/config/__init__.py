"""Typed settings: the only reader of ``config.toml`` and the environment.

:mod:`.settings` holds :class:`Settings` and the matching sections, :mod:`.daemon`
the daemon's sections (server, fetch, sources, smtp, alerts). Loading is explicit
(:func:`load_settings`); nothing is read at import.
"""

from monitor.config.daemon import (
    AlertSettings,
    FetchSettings,
    ServerSettings,
    SmtpSettings,
    SourceSettings,
)
from monitor.config.settings import (
    ClipSettings,
    DecodeSettings,
    DescriptorSettings,
    HashSettings,
    LocalSettings,
    ReportSettings,
    RulesSettings,
    Settings,
    StorageSettings,
    config_path,
    default_toml,
    load_settings,
)

__all__ = ["AlertSettings", "ClipSettings", "DecodeSettings", "DescriptorSettings",
           "FetchSettings", "HashSettings", "LocalSettings", "ReportSettings", "RulesSettings",
           "ServerSettings", "Settings", "SmtpSettings", "SourceSettings", "StorageSettings",
           "config_path", "default_toml", "load_settings"]
