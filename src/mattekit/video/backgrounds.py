"""What goes behind the subject in a composite, frame by frame, and composing one output frame."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from .. import compose, decode
from ..compose import alpha_to_u8
from ..core.engine import Matte
from ..errors import InvalidInput
from ..options import BackgroundImage, Blur, Options
from .outputs import OUTPUTS, VideoOptions
from .reader import read_frames


class Backgrounds:
    """The background layer for each frame: fixed (colour, image), per frame (blur) or a clip."""

    def __init__(self, options: Options, vopts: VideoOptions, skip: int = 0) -> None:
        self.bg = options.background
        self.skip = skip  # frames of the looped background clip already behind earlier chunks
        self.video = vopts.background_video
        self.max_pixels = options.max_pixels  # a background clip's frames too, each one
        self._fixed: np.ndarray | None = None
        self._frames: Generator[np.ndarray, None, None] | None = None
        if isinstance(self.bg, BackgroundImage) and not isinstance(self.bg.source, decode.Decoded):
            self.bg = BackgroundImage(decode.decode(self.bg.source, Options(max_pixels=options.max_pixels)), self.bg.fit)

    def layer(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        if self.video is not None:
            return self._next_video_frame(w, h)
        if isinstance(self.bg, Blur):
            return compose.background_array(self.bg, rgb)
        if self._fixed is None or self._fixed.shape[:2] != (h, w):
            self._fixed = compose.background_array(self.bg, rgb)  # type: ignore[arg-type]
        return self._fixed

    def _clip_frames(self) -> Generator[np.ndarray, None, None]:
        skip = self.skip
        while True:  # loop the clip for as long as the foreground lasts
            got = 0
            for frame in read_frames(self.video, max_pixels=self.max_pixels):  # type: ignore[arg-type]
                got += 1
                if skip > 0:
                    skip -= 1
                    continue
                yield frame[:, :, :3]
            if got == 0:
                raise InvalidInput(f"background video {self.video} has no frames")
            skip %= got  # a chunk deep into a long clip: whole loops of the background are not decoded again

    def _next_video_frame(self, w: int, h: int) -> np.ndarray:
        import cv2

        if self._frames is None:
            self._frames = self._clip_frames()
        pic = next(self._frames)
        ph, pw = pic.shape[:2]
        scale = max(w / pw, h / ph)  # cover, then centre-crop: like a 'fill' background image
        nw, nh = max(w, round(pw * scale)), max(h, round(ph * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        pic = cv2.resize(pic, (nw, nh), interpolation=interp)
        x, y = (nw - w) // 2, (nh - h) // 2
        return pic[y : y + h, x : x + w]

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()


def compose_frame(kind: str, rgb: np.ndarray, matte: Matte, background: np.ndarray | None, clean: bool) -> np.ndarray:
    """One frame for output type ``kind``: HxW alpha (matte), HxWx4 RGBA (transparent) or HxWx3 RGB
    (composite), as its row of the outputs table says."""
    spec = OUTPUTS.get(kind)
    frame = spec.frame if spec is not None else "rgba"  # any other name: a cut-out, as before the table
    a8 = alpha_to_u8(matte.alpha)
    if frame == "alpha":
        return a8
    colours = compose.decontaminate(rgb, matte.alpha, matte.foreground, matte.foreground_boxes) if clean else rgb
    if frame == "rgb":
        assert background is not None
        return compose.over(colours, matte.alpha, background)
    return decode.with_alpha(colours, a8)
