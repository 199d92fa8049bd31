"""The errors a user can cause, in one family.

Every error that bad input or a bad argument raises is a :class:`BayesLslError` (a
``ValueError``, so ``except ValueError`` keeps working), with a message that names the
offending field, row or argument. The command line reports these in one line; anything
else is a bug and is shown with its traceback.
"""

from __future__ import annotations


class BayesLslError(ValueError):
    """Invalid input or arguments; the message says what is wrong and where."""


class DataError(BayesLslError):
    """Invalid input data; the message names the column, row or model at fault."""


class FitFileError(BayesLslError, OSError):
    """A file that is not a fit, or a fit in a format this version cannot read."""
