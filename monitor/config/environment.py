"""Environment variables of other libraries that monitor honours (read here only).

``MONITOR_*`` variables are read by :class:`~monitor.config.settings.Settings`; these
are the Hugging Face hub's own (huggingface_hub documents them), read when asked,
not at import.
"""

from __future__ import annotations

import os

TRUE_WORDS = frozenset({"1", "ON", "YES", "TRUE"})
"""Values huggingface_hub reads as true (``huggingface_hub.constants._is_true``)."""


def hf_hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true word now (the hub is not contacted)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in TRUE_WORDS


def hf_hub_cache() -> str | None:
    """``HF_HUB_CACHE`` when set (the hub's cache folder), else None."""
    return os.environ.get("HF_HUB_CACHE") or None


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
"""Variables through which requests (and so huggingface_hub) reach HTTPS via a proxy."""


def https_proxy_configured() -> bool:
    """True when an HTTPS proxy is configured in the environment (a direct connection
    test then says nothing about whether the hub can be reached)."""
    return any(os.environ.get(name) for name in PROXY_VARIABLES)
