"""Settings: defaults, TOML, environment precedence and clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from monitor.config import Settings, default_toml, load_settings
from monitor.errors import ConfigError


def test_defaults_without_file(deploy: Path) -> None:
    s = load_settings()
    assert s.root == deploy and s.hash.max_distance == 12
    assert s.database_url == f"sqlite:///{deploy / 'data' / 'monitor.db'}"


def test_toml_then_env_precedence(deploy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (deploy / "config.toml").write_text("[hash]\nmax_distance = 5\n[clip]\nrequired = true\n")
    assert load_settings().hash.max_distance == 5
    monkeypatch.setenv("MONITOR_HASH__MAX_DISTANCE", "9")
    s = load_settings()
    assert s.hash.max_distance == 9 and s.clip.required is True


def test_settings_are_frozen(deploy: Path) -> None:
    s = load_settings()
    with pytest.raises(Exception, match="frozen"):
        s.hash.max_distance = 3  # type: ignore[misc]


def test_unknown_key_names_file_and_key(deploy: Path) -> None:
    (deploy / "config.toml").write_text("[local]\nmin_inlier = 3\n")
    with pytest.raises(ConfigError, match=r"config\.toml: local\.min_inlier"):
        load_settings()


def test_bad_value_and_bad_toml(deploy: Path) -> None:
    (deploy / "config.toml").write_text('[decode]\nmax_bytes = "lots"\n')
    with pytest.raises(ConfigError, match="decode.max_bytes"):
        load_settings()
    (deploy / "config.toml").write_text("[decode\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_default_toml_documents_every_key_and_round_trips(deploy: Path) -> None:
    text = default_toml()
    parsed = tomllib.loads(text)
    for name, field in Settings.model_fields.items():
        if name in ("root", "sources"):
            continue
        expected = set(type(field.default).model_fields)
        if name == "server":  # an array of tables, shown as a commented example instead
            expected.discard("keys")
            assert "# [[server.keys]]" in text
        assert set(parsed[name]) == expected, name
    (deploy / "config.toml").write_text(text)
    assert load_settings().model_dump(exclude={"root"}) == Settings().model_dump(exclude={"root"})
    assert text.count("\n# ") >= sum(len(type(f.default).model_fields)
                                     for n, f in Settings.model_fields.items()
                                     if n not in ("root", "sources"))


def test_sources_and_secret_file(deploy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (deploy / "smtp.pw").write_text("s3cret\n")
    (deploy / "config.toml").write_text(
        '[smtp]\npassword_file = "smtp.pw"\n'
        '[[sources]]\nname = "shop"\nkind = "page"\nlocation = "https://shop.example/"\n')
    s = load_settings()
    assert s.source("shop").kind == "page" and s.source("nope") is None
    assert s.secret(s.smtp.password, s.smtp.password_file) == "s3cret"
    monkeypatch.setenv("MONITOR_SMTP__PASSWORD", "from-env")
    s = load_settings()
    assert s.secret(s.smtp.password, s.smtp.password_file) == "from-env"
    assert "from-env" not in repr(s.smtp)
    (deploy / "config.toml").write_text('[[sources]]\nname = "x"\nkind = "ftp"\n')
    with pytest.raises(ConfigError, match=r"sources\.0\.kind"):
        load_settings()


def test_misspelt_key_gets_a_did_you_mean(deploy: Path) -> None:
    (deploy / "config.toml").write_text("[hash]\nmax_distanse = 3\n[descriptor]\ntopk = 3\n",
                                        encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "did you mean hash.max_distance?" in text
    assert "did you mean descriptor.top_k?" in text
    (deploy / "config.toml").write_text("[hash]\nzzzz = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="known keys here: enabled, max_distance"):
        load_settings()
