"""The base class of every ``config.toml`` section model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: immutable once loaded, and an unknown key is a validation error
    (a misspelt option must not be silently ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
