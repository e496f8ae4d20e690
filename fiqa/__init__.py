"""fiqa: face image quality assessment.

>>> import fiqa
>>> estimator = fiqa.create("baseline")             # any name from fiqa.list_estimators()
>>> scorer = fiqa.Scorer(["baseline"])              # decode → detect → align → score
>>> rows = [row for rows in scorer.run(["face.jpg"]) for row in rows]
>>> heatmap = next(fiqa.explain_images(["face.jpg"])).heatmap   # 14×14 attention map
"""

from .crop import DEFAULT_CROP, CropSpec, align
from .estimators import QualityEstimator, create, estimator_class, list_estimators, register
from .faces import Faces
from .imageio import ImageReadError, LoadedImage, expand_inputs, read_image
from .pipeline import Scorer

__version__ = "0.1.0"

from .explain import explain_images  # noqa: E402 - these need __version__ defined first
from .gallery import Gallery  # noqa: E402
from .verify import Verifier  # noqa: E402

__all__ = [
    "DEFAULT_CROP", "CropSpec", "Faces", "Gallery", "ImageReadError", "LoadedImage",
    "QualityEstimator", "Scorer", "Verifier", "align", "create", "estimator_class",
    "explain_images", "expand_inputs", "list_estimators", "read_image", "register",
]
