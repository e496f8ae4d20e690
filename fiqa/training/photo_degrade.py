"""Capture and re-encoding degradations of whole photos, applied before detection and alignment.

:mod:`fiqa.training.degrade` degrades the aligned crop, so a blur kernel or a JPEG block grid always
sits where the crop puts it, and models learn that pipeline's artefacts. These families act on the
original photo at its own resolution, as a camera and a re-encoding chain would; the photo is then
detected and aligned like any other.

Every family is a function ``(photo, rng, face=None, **params) -> photo``: an H×W×3 uint8 RGB
photo in, a new one of the same shape out. Sizes are in *face units* (:attr:`FaceGeometry.unit`,
the inter-eye distance in pixels), or a sixth of the photo's short side when no face is given.
Light-dependent families work in linear light (the sRGB curve undone, then re-applied).

============== ==================================================================================
defocus        disk PSF of ``radius`` face units, or a Gaussian of σ = radius / 2 (linear light)
motion         linear PSF of ``length`` face units at ``angle`` degrees (linear light)
downscale      whole photo resized so the face's eye distance is ``eye_distance`` px, then back
noise          Poisson-Gaussian sensor noise, variance ``shot``·x + ``read``² (linear light x)
jpeg           Pillow JPEG round trip of the photo (its own 8×8 grid, shifted by ``offset``)
exposure       linear gain of 2^``stops`` with clipping, then the tone curve y ↦ y^``gamma``
white_balance  per-channel gains in linear light: ``warmth`` stops red over blue, ``tint`` green
occlusion      a shape or a patch of the photo over the eyes, the mouth or one side of the face
============== ==================================================================================

A :class:`PhotoDegradation` chains families with parameter ranges and probabilities; calling it
returns the degraded photo and an :class:`Applied` record per step that ran.
:func:`training_recipe` and :func:`evaluation_recipe` differ in ranges and in order, to test
generalisation to a recipe never trained on.

Face geometry comes from a detection on the *clean* photo (the caller runs it; the families do not
move the face), e.g. ``faces, points = Scorer((), device="cpu").locate([image])[0]`` and then
``FaceGeometry(points[0], faces.boxes[0] * image.scale)`` for the decoded ``image.pixels``.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy.signal import fftconvolve

from ..faces import Faces

# Median MTCNN landmarks of LFW faces in box units (x / width, y / height), made symmetric:
# image-left eye, image-right eye, nose, image-left and image-right mouth corners.
_BOX_TEMPLATE = np.array([[0.27, 0.385], [0.73, 0.385], [0.5, 0.585], [0.29, 0.75], [0.71, 0.75]])
_CODES = np.arange(256) / 255
_SRGB_TO_LINEAR = np.where(_CODES <= 0.04045, _CODES / 12.92,
                           ((_CODES + 0.055) / 1.055) ** 2.4).astype(np.float32)
_LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 weights of linear R, G, B
_RESAMPLE = {"area": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC, "nearest": Image.Resampling.NEAREST}
_FILLS = {  # plausible occluder colours (RGB): sunglasses and hair, hands, masks and paper
    "dark": np.array([[20, 20, 22], [45, 35, 30], [35, 40, 50]]),
    "skin": np.array([[224, 172, 140], [198, 134, 103], [141, 85, 54], [90, 56, 37]]),
    "light": np.array([[235, 235, 232], [200, 220, 235], [170, 200, 225]]),
}


@dataclass
class FaceGeometry:
    """One face in photo pixels, detected on the clean photo.

    landmarks: 5×2 (x, y) in fiqa's order (image-left eye, image-right eye, nose, image-left and
        image-right mouth corners; see :class:`fiqa.faces.Faces`).
    box: (x1, y1, x2, y2).
    Either may be omitted: it is then estimated from the other with MTCNN's proportions on LFW.
    """

    landmarks: np.ndarray | None = None
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.landmarks is None and self.box is None:
            raise ValueError("FaceGeometry needs landmarks, a box or both")
        if self.landmarks is None:
            x1, y1, x2, y2 = np.asarray(self.box, dtype=np.float64)
            self.landmarks = [x1, y1] + _BOX_TEMPLATE * [x2 - x1, y2 - y1]
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64).reshape(5, 2)
        if self.box is None:  # per axis, the least-squares box whose template fits the landmarks
            origin_size = [np.linalg.lstsq(np.stack([np.ones(5), _BOX_TEMPLATE[:, axis]], 1),
                                           self.landmarks[:, axis], rcond=None)[0]
                           for axis in (0, 1)]
            (x1, width), (y1, height) = origin_size
            self.box = [x1, y1, x1 + width, y1 + height]
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)

    @classmethod
    def from_faces(cls, faces: Faces, index: int = 0, scale: float = 1.0) -> FaceGeometry:
        """Face ``index`` of ``faces`` (original pixels); ``scale``: photo pixels per original
        pixel (``LoadedImage.scale`` when degrading a reduced decode)."""
        return cls(faces.landmarks[index] * scale, faces.boxes[index] * scale)

    @property
    def unit(self) -> float:
        """The face's size in pixels: its inter-eye distance, or 0.8 × its eye-to-mouth distance
        when that is larger (a turned face)."""
        eyes, mouth = self.landmarks[:2], self.landmarks[3:]
        eye_mouth = np.linalg.norm(mouth.mean(0) - eyes.mean(0))
        return float(max(np.linalg.norm(eyes[1] - eyes[0]), 0.8 * eye_mouth, 1.0))


def to_linear(photo: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 sRGB → float32 linear light in [0, 1]."""
    return _SRGB_TO_LINEAR[photo]


def to_srgb(linear: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Linear light (clipped to [0, 1]) → uint8 sRGB, the encoded values raised to ``gamma``."""
    x = np.clip(linear, 0, 1)
    encoded = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
    return np.clip(encoded**gamma * 255 + 0.5, 0, 255).astype(np.uint8)


def _unit(photo: np.ndarray, face: FaceGeometry | None) -> float:
    """Pixels per face unit: the face's :attr:`~FaceGeometry.unit`, else a sixth of the short side
    (the eye distance of a head-and-shoulders portrait such as LFW's)."""
    return face.unit if face is not None else min(photo.shape[:2]) / 6


def _convolve(photo: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``photo`` convolved in linear light with a normalised odd-sized 2-D ``kernel``, edges
    reflected."""
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(to_linear(photo), ((ry, ry), (rx, rx), (0, 0)), mode="reflect")
    kernel = (kernel / kernel.sum()).astype(np.float32)[:, :, None]
    return to_srgb(fftconvolve(padded, kernel, mode="valid", axes=(0, 1)))


def defocus(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None, *,
            radius: float = 0.1, psf: str = "disk") -> np.ndarray:
    """Out-of-focus blur: a disk PSF of ``radius`` face units (anti-aliased edge), or for
    ``psf="gaussian"`` a Gaussian of σ = radius / 2 (the disk's per-axis spread)."""
    r = radius * _unit(photo, face)
    if psf == "disk":
        half = int(np.ceil(r + 0.5))
        y, x = np.mgrid[-half:half + 1, -half:half + 1]
        kernel = np.clip(r + 0.5 - np.hypot(x, y), 0, 1)
    elif psf == "gaussian":
        sigma = max(r / 2, 1e-3)
        x = np.arange(-int(np.ceil(3 * sigma)), int(np.ceil(3 * sigma)) + 1)
        line = np.exp(-x**2 / (2 * sigma**2))
        kernel = np.outer(line, line)
    else:
        raise ValueError(f"psf must be 'disk' or 'gaussian', got {psf!r}")
    return _convolve(photo, kernel)


def motion(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None, *,
           length: float = 0.2, angle: float = 0.0) -> np.ndarray:
    """Camera shake: a straight PSF ``length`` face units long at ``angle`` degrees from the x axis
    (counter-clockwise on screen), rasterised with bilinear weights."""
    length_px = length * _unit(photo, face)
    half = int(np.ceil(length_px / 2)) + 1
    t = np.linspace(-length_px / 2, length_px / 2, max(2, int(np.ceil(4 * length_px))))
    xs = half + t * np.cos(np.radians(angle))
    ys = half - t * np.sin(np.radians(angle))
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dy, dx, weight in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                           (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return _convolve(photo, kernel)


def downscale(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None, *,
              eye_distance: float = 8.0, down: str = "area", up: str = "bicubic") -> np.ndarray:
    """The whole photo resized (``down``: area, bilinear or nearest) so that one face unit spans
    ``eye_distance`` px, then back to its size (``up``: bicubic or bilinear). Unchanged when that
    would enlarge it."""
    height, width = photo.shape[:2]
    factor = eye_distance / _unit(photo, face)
    if factor >= 1:
        return photo.copy()
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = Image.fromarray(photo).resize(small, _RESAMPLE[down])
    return np.asarray(image.resize((width, height), _RESAMPLE[up])).copy()


def noise(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None, *,
          shot: float = 0.005, read: float = 0.005, per_channel: bool = True) -> np.ndarray:
    """Sensor noise in linear light x ∈ [0, 1]: Gaussian of variance ``shot``·x (photon noise,
    ``shot`` = 1 / full-scale electrons) + ``read``² (read noise), independent per channel (chroma
    noise) or, with ``per_channel=False``, one draw shared by the channels (luminance noise)."""
    x = to_linear(photo)
    shape = x.shape if per_channel else (*x.shape[:2], 1)
    draws = rng.standard_normal(shape, dtype=np.float32)
    return to_srgb(x + np.sqrt(shot * x + read**2) * draws)


def _jpeg_round_trip(photo: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """H×W×3 uint8 encoded by Pillow at ``quality`` (1–95) and ``subsampling`` (``"4:4:4"``,
    ``"4:2:2"`` or ``"4:2:0"``), decoded again."""
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=int(quality), subsampling=subsampling)
    return np.asarray(Image.open(buffer).convert("RGB"))


def jpeg(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None, *,
         quality: int = 30, subsampling: str = "4:2:0", offset: int = 0) -> np.ndarray:
    """JPEG round trip of the whole photo. ``offset`` > 0 drops that many first rows and columns
    before encoding (a re-encode after a crop: its block grid shifted) and keeps them as they were.
    """
    out = photo.copy()
    out[offset:, offset:] = _jpeg_round_trip(photo[offset:, offset:], quality, subsampling)
    return out


def exposure(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None, *,
             stops: float = 0.0, gamma: float = 1.0) -> np.ndarray:
    """Under- (``stops`` < 0) or over-exposure: linear light times 2^stops, clipped at white, then
    the encoded values raised to ``gamma`` (> 1 darkens the mid-tones)."""
    return to_srgb(to_linear(photo) * 2.0**stops, gamma)


def white_balance(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None,
                  *, warmth: float = 0.0, tint: float = 0.0) -> np.ndarray:
    """A wrong white balance: linear red × 2^(warmth/2), blue × 2^(−warmth/2), green × 2^tint,
    normalised to keep the luminance of grey; values clip at white."""
    gains = 2.0 ** np.array([warmth / 2, tint, -warmth / 2])
    return to_srgb(to_linear(photo) * (gains / (gains @ _LUMA)).astype(np.float32))


def occlusion(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry | None = None, *,
              region: str = "eyes", shape: str = "rectangle", fill: str = "dark",
              extent: float = 1.0) -> np.ndarray:
    """An occluder over the face, aligned with its eye line: ``region`` ``"eyes"`` (a band over both
    eyes), ``"mouth"`` (mouth and chin), ``"left"`` or ``"right"`` (that image side); ``shape``
    ``"rectangle"`` or ``"ellipse"``, scaled by ``extent``; ``fill`` a shaded colour (``"dark"``,
    ``"skin"``, ``"light"``) or ``"patch"`` (texture copied from the part of the photo farthest
    from the face). Only pixels within half a face unit of the box change; no face: unchanged."""
    if face is None:
        return photo.copy()
    d, points = face.unit, face.landmarks
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    across = (points[1] - points[0]) / max(np.linalg.norm(points[1] - points[0]), 1e-6)
    down = np.array([-across[1], across[0]])
    down = down if down @ (mouth - eyes) >= 0 else -down
    middle = (eyes + mouth) / 2
    regions = {  # centre in pixels; half sizes (along the eye line, across it) in face units
        "eyes": (eyes, (1.0, 0.35)), "mouth": (mouth + 0.25 * d * down, (0.85, 0.6)),
        "left": (middle - 0.55 * d * across, (0.6, 1.3)),
        "right": (middle + 0.55 * d * across, (0.6, 1.3)),
    }
    if region not in regions:
        raise ValueError(f"region must be one of {list(regions)}, got {region!r}")
    centre, half_size = regions[region]
    a, b = np.array(half_size) * extent * d
    x1, y1, x2, y2 = face.box + [-d / 2, -d / 2, d / 2, d / 2]
    top, left = max(0, int(y1)), max(0, int(x1))
    bottom, right = min(photo.shape[0], int(np.ceil(y2))), min(photo.shape[1], int(np.ceil(x2)))
    if bottom <= top or right <= left:
        return photo.copy()
    y, x = np.mgrid[top:bottom, left:right] + 0.5 - centre[::-1, None, None]
    u, v = x * across[0] + y * across[1], x * down[0] + y * down[1]
    if shape == "rectangle":
        inside = np.minimum(a - np.abs(u), b - np.abs(v))  # signed distance to the edge, px
    elif shape == "ellipse":
        inside = (1 - np.hypot(u / a, v / b)) * min(a, b)
    else:
        raise ValueError(f"shape must be 'rectangle' or 'ellipse', got {shape!r}")
    mask = np.clip(inside + 0.5, 0, 1)[:, :, None]
    window = photo[top:bottom, left:right].astype(np.float32)
    cover = _patch(photo, rng, face, top, left, *window.shape[:2]) if fill == "patch" else \
        _shaded(rng, fill, window.shape[:2])
    out = photo.copy()
    out[top:bottom, left:right] = np.clip(mask * cover + (1 - mask) * window + 0.5, 0, 255)
    return out


def _shaded(rng: np.random.Generator, fill: str, size: tuple[int, int]) -> np.ndarray:
    """size[0]×size[1]×3 float: one of ``_FILLS[fill]``, brightness jittered, lit by a linear ramp
    from a random side, with faint grain."""
    if fill not in _FILLS:
        raise ValueError(f"fill must be one of {[*_FILLS, 'patch']}, got {fill!r}")
    colour = _FILLS[fill][rng.integers(len(_FILLS[fill]))] * rng.uniform(0.85, 1.1)
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[:size[0], :size[1]] / max(size)
    ramp = 1 + 0.3 * (x * np.cos(angle) + y * np.sin(angle) - 0.5)
    grain = rng.normal(0, 2, (*size, 1))
    return ramp[:, :, None] * colour + grain


def _patch(photo: np.ndarray, rng: np.random.Generator, face: FaceGeometry, top: int, left: int,
           height: int, width: int) -> np.ndarray:
    """A height×width×3 float patch of ``photo``: of 16 random placements, the one overlapping the
    face box least (overlapping it when the face fills the photo)."""
    tops = rng.integers(0, photo.shape[0] - height + 1, 16)
    lefts = rng.integers(0, photo.shape[1] - width + 1, 16)
    x1, y1, x2, y2 = face.box
    overlap = (np.clip(np.minimum(lefts + width, x2) - np.maximum(lefts, x1), 0, None)
               * np.clip(np.minimum(tops + height, y2) - np.maximum(tops, y1), 0, None))
    best = int(np.argmin(overlap))
    return photo[tops[best]:tops[best] + height, lefts[best]:lefts[best] + width].astype(np.float32)


Family = Callable[..., np.ndarray]
FAMILIES: dict[str, Family] = {
    "defocus": defocus, "motion": motion, "downscale": downscale, "noise": noise, "jpeg": jpeg,
    "exposure": exposure, "white_balance": white_balance, "occlusion": occlusion,
}
NEEDS_FACE = {"occlusion"}  # families a recipe skips (and does not record) without a face


def redetected(photo: np.ndarray, points: np.ndarray, family: str, params: Mapping[str, Any],
               scorer, spec) -> np.ndarray | None:
    """``photo`` (H×W×3 uint8, its face's 5×2 ``points``) degraded whole by one ``family`` with
    fixed ``params`` (seed 0), and the face found again there by ``scorer``
    (:class:`fiqa.Scorer`) and aligned to ``spec``: the S×S×3 uint8 crop, or None where the
    detector loses the face."""
    from ..crop import align
    from ..imageio import LoadedImage, pixel_tensor

    worse = FAMILIES[family](photo, np.random.default_rng(0), FaceGeometry(points), **params)
    (faces, found), = scorer.locate([LoadedImage(worse)])
    if not len(faces):
        return None
    crop = align(pixel_tensor(worse).permute(2, 0, 1), found[:1], spec)
    return crop[0].permute(1, 2, 0).numpy()


@dataclass(frozen=True)
class Uniform:
    """A float from [low, high], uniform (or log-uniform when ``log``)."""

    low: float
    high: float
    log: bool = False

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class Integers:
    """An int from low to high, both included."""

    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class OneOf:
    """One of ``options``, equally likely."""

    options: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]


Distribution = Uniform | Integers | OneOf


@dataclass(frozen=True)
class Step:
    """Family ``family`` with probability ``probability``; ``params``: keyword → a fixed value or
    a :data:`Distribution` drawn afresh each time."""

    family: str
    params: Mapping[str, Any] = field(default_factory=dict)
    probability: float = 1.0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; choose from {sorted(FAMILIES)}")
        accepted = set(inspect.signature(FAMILIES[self.family]).parameters) - {"photo", "rng",
                                                                                 "face"}
        if unknown := set(self.params) - accepted:
            raise ValueError(f"{self.family} takes {sorted(accepted)}, not {sorted(unknown)}")
        if not 0 <= self.probability <= 1:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")


@dataclass(frozen=True)
class Applied:
    """One step that ran: its family and the parameter values it drew."""

    family: str
    params: dict[str, Any]


@dataclass(frozen=True)
class PhotoDegradation:
    """An ordered chain of :class:`Step`; call it on a photo (see :meth:`__call__`)."""

    name: str
    steps: tuple[Step, ...]

    def __call__(self, photo: np.ndarray, rng: np.random.Generator | int,
                 face: FaceGeometry | None = None, families: Collection[str] | None = None,
                 exclude: Collection[str] = ()) -> tuple[np.ndarray, list[Applied]]:
        """``photo`` (H×W×3 uint8 RGB) degraded by the steps, in order → (H×W×3 uint8, the steps
        that ran). ``rng``: a seed or generator; each step draws from its own child stream, so
        leaving a family out (``families``: only these; ``exclude``: not these) leaves every other
        step's draws as they were."""
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
            raise ValueError(f"photo must be H×W×3 uint8, got {photo.shape} {photo.dtype}")
        if unknown := (set(families or ()) | set(exclude)) - set(FAMILIES):
            raise ValueError(f"unknown families {sorted(unknown)}; choose from {sorted(FAMILIES)}")
        streams = np.random.default_rng(rng).spawn(len(self.steps))
        applied: list[Applied] = []
        for step, stream in zip(self.steps, streams, strict=True):
            chosen = (families is None or step.family in families) and step.family not in exclude
            if not chosen or stream.random() >= step.probability:
                continue
            if face is None and step.family in NEEDS_FACE:
                continue
            params = {key: value.sample(stream) if isinstance(value, Distribution) else value
                      for key, value in step.params.items()}
            photo = FAMILIES[step.family](photo, stream, face, **params)
            applied.append(Applied(step.family, params))
        return photo, applied


def training_recipe() -> PhotoDegradation:
    """The recipe to train on, in camera order: scene (occluder, light), optics, sensor, white
    balance, a resize for the web and one JPEG encode."""
    return PhotoDegradation("training", (
        Step("occlusion", {"region": OneOf(("eyes", "mouth", "left", "right")),
                           "shape": OneOf(("rectangle", "ellipse")),
                           "fill": OneOf(("dark", "skin", "light", "patch")),
                           "extent": Uniform(0.7, 1.2)}, 0.15),
        Step("exposure", {"stops": Uniform(-2.5, 1.5), "gamma": Uniform(0.8, 1.25)}, 0.3),
        Step("defocus", {"radius": Uniform(0.02, 0.25), "psf": "disk"}, 0.3),
        Step("motion", {"length": Uniform(0.05, 0.4), "angle": Uniform(0, 180)}, 0.2),
        Step("noise", {"shot": Uniform(1e-4, 2e-2, log=True), "read": Uniform(5e-4, 1e-2, log=True),
                       "per_channel": OneOf((True, False))}, 0.3),
        Step("white_balance", {"warmth": Uniform(-1, 1), "tint": Uniform(-0.3, 0.3)}, 0.3),
        Step("downscale", {"eye_distance": Uniform(6, 30, log=True),
                           "down": OneOf(("area", "bilinear")), "up": "bicubic"}, 0.3),
        Step("jpeg", {"quality": Integers(15, 90), "subsampling": OneOf(("4:2:0", "4:4:4"))}, 0.5),
    ))


def evaluation_recipe() -> PhotoDegradation:
    """A recipe never trained on: other ranges and PSF, white balance and noise *before* exposure
    and blur (a processed, pushed, re-photographed image), a first JPEG before the resize and a
    second after it on a shifted grid, and nearest-neighbour (aliasing) downscaling."""
    return PhotoDegradation("test", (
        Step("occlusion", {"region": OneOf(("eyes", "mouth", "left", "right")),
                           "shape": OneOf(("rectangle", "ellipse")),
                           "fill": OneOf(("dark", "skin", "light", "patch")),
                           "extent": Uniform(0.9, 1.4)}, 0.2),
        Step("white_balance", {"warmth": Uniform(-1.5, 1.5), "tint": Uniform(-0.5, 0.5)}, 0.4),
        Step("noise", {"shot": Uniform(3e-4, 4e-2, log=True), "read": Uniform(1e-3, 2e-2, log=True),
                       "per_channel": True}, 0.4),
        Step("exposure", {"stops": Uniform(-3, 2), "gamma": Uniform(0.7, 1.4)}, 0.3),
        Step("motion", {"length": Uniform(0.1, 0.6), "angle": Uniform(0, 180)}, 0.25),
        Step("defocus", {"radius": Uniform(0.03, 0.35), "psf": "gaussian"}, 0.3),
        Step("jpeg", {"quality": Integers(30, 95), "subsampling": OneOf(("4:4:4", "4:2:2"))}, 0.5),
        Step("downscale", {"eye_distance": Uniform(4, 20, log=True),
                           "down": OneOf(("bilinear", "nearest")),
                           "up": OneOf(("bilinear", "bicubic"))}, 0.35),
        Step("jpeg", {"quality": Integers(10, 60), "subsampling": "4:2:0",
                      "offset": Integers(0, 7)}, 0.6),
    ))
