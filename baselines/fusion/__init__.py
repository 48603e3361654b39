"""``attention-unet-mixture-median``: the generalist net fused with the median comparison of companion exposures.

:mod:`.scores` holds the pure fusion rule, :mod:`.detector` the detector, :mod:`.fit` the command that
chooses the fusion weight on the mixture's validation splits and writes the shipped sidecar.
"""
