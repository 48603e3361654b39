"""Values that are identical on every CPU.

numpy picks SIMD kernels per CPU at run time (``X86_V3`` = AVX2/FMA3, ``X86_V4`` = AVX-512 on x86;
NEON on Arm) and OpenBLAS picks its own. Elementwise ``+ - * /`` and ``sqrt`` are correctly rounded
everywhere, but reductions (``sum``, ``mean`` over a contiguous axis use a pairwise sum whose
unrolling follows the vector width), matrix products and the vectorised transcendental functions
(``exp``, ``log``, ``power``, ... under AVX-512) can differ in the last bits between machines. A
dataset's content hash covers every stored byte, so such differences made honest builds of the same
recipe differ between machines.

crbench's rule for stored simulated values: every float that a recipe writes is *digitised* first,
images to the detector's ADU step (as a real analogue-to-digital converter does) and table columns
to a fixed absolute step far coarser than the last-bit noise (:data:`TABLE_DECIMALS` decimals).
A last-bit difference then changes a stored value only if it straddles a rounding boundary, which
for float64 noise of ~1e-13 relative and steps of 1e-3 happens with probability ~1e-10 per value.
``tests/test_portable.py`` builds every standard recipe with numpy's SIMD dispatch and OpenBLAS's
kernel switched down and checks that the content hashes do not move.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Decimals kept for the float columns of stored tables (charges in e-, positions in px, angles in deg).
TABLE_DECIMALS = 3


def digitise(image: np.ndarray, step: float) -> np.ndarray:
    """Round ``image`` to integer multiples of ``step`` (e.g. the gain in e-/ADU).

    Parameters
    ----------
    image : ndarray
        Values in e- (any float dtype).
    step : float
        The quantum, > 0.

    Returns
    -------
    ndarray of float64
        ``round(image / step) * step``.
    """
    step = float(step)
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"digitise: step must be a positive finite number, got {step!r}")
    return np.round(np.asarray(image, dtype=np.float64) / step) * step


def round_table(table: pd.DataFrame, decimals: int = TABLE_DECIMALS) -> pd.DataFrame:
    """Round every floating-point column of ``table`` to ``decimals`` decimals (a copy).

    NaN stays NaN and integer, bool and string columns are untouched.
    """
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = np.round(out[col].to_numpy(dtype=np.float64), decimals)
    return out
