"""Multi-exposure CR labelling of a series of real frames of one field (pure functions).

The pipeline follows the Cosmic-CoNN labelling recipe (docs/anchors.md#cosmic-conn-labelling) adapted
to a drifting series from a small telescope without calibration frames:

1. **Alignment** (:func:`register_series`): sub-pixel shifts by phase cross-correlation of
   static-pattern-subtracted, 3x3-median-filtered frames against one reference frame; any shift up
   to half the frame (re-centring jumps of > 60 px included) is recovered.
2. **Sky model and static pattern** (:func:`static_pattern`): the median of the aligned frames is
   the sky model; the per-detector-pixel median of (frame - sky model shifted back) is the static
   detector pattern (bias structure, hot pixels), removed from every frame.
3. **Noise model** (:func:`estimate_noise`): gain from the photon-transfer slope of the variance of
   consecutive-frame differences against sky level (the sky changes over the night), read noise
   from the variance floor, when headers lack them.
4. **Seeds and growth** (:func:`seeds_and_growth`): SNR = (f - m) / sqrt(var_f + var_m + (s grad m)^2)
   against the median m of the aligned companions is the significance of the library's one truth
   rule (:func:`crbench.truth.apply_truth_rule`, :attr:`LabelParams.truth_rule`: seeds at SNR > 5,
   8-connected growth inside SNR > 2.5, as in the simulators); components touching sources, smaller
   than ``min_pixels`` or on vetoed pixels go to the ignore mask (ambiguous). Pixels above 1 sigma
   connected to a seed that fail the rule are the halo.
5. **Hot/flickering pixel veto** (:func:`hot_pixel_veto`): a detector pixel seeded in several
   frames, or with a strong static pattern, is not a CR.
6. **Outlying frames** (:func:`outlying_frames`): a frame whose CR pixel share exceeds
   min(2 x mean, mean + 2 sd) is rejected.

All parameters live in :class:`LabelParams` and are recorded in the dataset card.

One module per step (``params``, ``alignment``, ``sky``, ``noise``, ``masks``, ``detection``,
``series``); every public name is re-exported here.
"""
from __future__ import annotations

from .params import EIGHT, LabelParams, NoiseModel  # noqa: F401
from .alignment import register_series, shift_image, shift_mask  # noqa: F401
from .sky import sky_levels, aligned_median, static_pattern  # noqa: F401
from .noise import estimate_noise  # noqa: F401
from .masks import sources_mask, border_mask  # noqa: F401
from .detection import (classify_morphology, halo_mask, hot_pixel_veto, instance_table,  # noqa: F401
                        outlying_frames, seeds_and_growth, snr_map, split_components)
from .series import (FrameLabel, SeriesLabels, SeriesModel, fit_series_model, companion_indices,  # noqa: F401
                     label_series, labelling_companions)
