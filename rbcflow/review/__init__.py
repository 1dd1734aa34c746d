"""``rbcflow review``: a local web application to check the calls, and what it writes.

- :mod:`rbcflow.review.store`: a results folder (:class:`Results`), its acquisitions and
  ``review.csv`` (read with checks, written atomically).
- :mod:`rbcflow.review.decide`: a decision saved, the reviewed figures written into
  ``report.csv``, ``run.json`` and ``report.html`` under the folder's lock.
- :mod:`rbcflow.review.calibrated`: the reviewed fraction (the classifiers' probabilities
  re-calibrated on the reviews) and its interval.
- :mod:`rbcflow.review.order`: the review order (the review expected to remove the most error
  first; recomputed after every decision).
- :mod:`rbcflow.review.server`, :mod:`rbcflow.review.serve`: the Starlette application and
  its uvicorn runner (token, loopback, escaping).
- :mod:`rbcflow.review.export`: reviewed tracks -> a labelled set (``export-labels``).

Nothing heavy is imported here: the web framework loads when the server starts.
"""
