"""Typed settings: the only reader of ``config.toml`` and the environment.

:mod:`.settings` holds :class:`Settings` and loading; the sections live beside it:
:mod:`.decode` (input limits), :mod:`.stages` (hash, clip, descriptor, local),
:mod:`.retrieval`, :mod:`.queue`, :mod:`.storage`, :mod:`.outcome` (rules, report) and
:mod:`.daemon` (server, fetch, sources, smtp, alerts); :mod:`.settings` re-exports the
sections it assembles. Loading is explicit (:func:`load_settings`); nothing is read at
import.
"""

from monitor.config.daemon import (
    AlertSettings,
    FetchSettings,
    ServerSettings,
    SmtpSettings,
    SourceSettings,
)
from monitor.config.decode import DecodeSettings
from monitor.config.outcome import ReportSettings, RulesSettings
from monitor.config.settings import Settings, config_path, default_toml, load_settings
from monitor.config.stages import ClipSettings, DescriptorSettings, HashSettings, LocalSettings
from monitor.config.storage import StorageSettings

__all__ = ["AlertSettings", "ClipSettings", "DecodeSettings", "DescriptorSettings",
           "FetchSettings", "HashSettings", "LocalSettings", "ReportSettings", "RulesSettings",
           "ServerSettings", "Settings", "SmtpSettings", "SourceSettings", "StorageSettings",
           "config_path", "default_toml", "load_settings"]
