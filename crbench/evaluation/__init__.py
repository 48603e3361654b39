"""The evaluation harness, in layers that depend one way (each module imports only those above it).

- :mod:`.records`: a (detector, sample) evaluation reduced to a :class:`~.records.SampleRecord` of
  small threshold-free pieces that add up (or a :class:`~.records.SampleFailure`); pure functions.
- :mod:`.scoring`: run a detector on one sample's observation, validate and time its score map.
- :mod:`.execution`: produce the records of many samples serially, on a process pool or on dask,
  through the record cache.
- :mod:`.reduction`: successful records -> summary, curve, operating points, morphology rows
  (bootstrap replicates re-weight records instead of rescoring).
- :mod:`.settings`, :mod:`.run`: the typed settings of an evaluation and its typed run results
  and provenance.
- :mod:`.api`: :func:`~.api.evaluate`, which ties them together into :class:`~crbench.results.Results`.

:mod:`crbench.harness` re-exports the public names. This package module imports nothing, so that
:mod:`crbench.cache` can use :mod:`.records` without a cycle.
"""
