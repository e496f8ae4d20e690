"""Evaluation of quality estimators: error-versus-discard curves (EDC) and their pAUC."""

from .edc import (
    EDC,
    CrfiqaERC,
    crfiqa_erc,
    edc,
    normalized_fnmr_pauc,
    normalized_pauc,
    oracle_quality,
    pair_quality,
    pauc,
    random_pauc,
    threshold_for_fmr,
    threshold_for_fnmr,
)

__all__ = [
    "EDC", "CrfiqaERC", "crfiqa_erc", "edc", "normalized_fnmr_pauc", "normalized_pauc",
    "oracle_quality", "pair_quality", "pauc", "random_pauc", "threshold_for_fmr",
    "threshold_for_fnmr",
]
