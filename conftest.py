"""The names every doctest of the package starts with (``pytest --doctest-modules``).

- ``bl``: the package;
- ``data``: ``bl.load_example()``;
- ``fit``: ``bl.fit(data, K=2, method="map", seed=1, progress=False)``, made once per
  session, and only if a doctest uses the name (a map fit takes seconds, mostly compiling);
  its warning that a point estimate has no parameter uncertainty is silenced in doctests.

Nothing is imported at module level: ``tests/conftest.py`` sets the BLAS threads before
numpy loads, and this file is read first.
"""

from __future__ import annotations

import re

import pytest

#: ``fit`` used as a name, not as ``bl.fit`` or an argument name like ``fit=``.
_USES_FIT = re.compile(r"(?<![\w.])fit\b(?!\s*=[^=])")
#: ``fit`` assigned at the start of a statement.
_MAKES_FIT = re.compile(r"^\s*fit\s*=[^=]", re.M)


def _needs_fit(examples) -> bool:
    """Whether a doctest reads ``fit`` before (or without) making its own."""
    for example in examples:
        source = "\n".join(line.split("#")[0] for line in example.source.splitlines())  # comments say, not use
        if _MAKES_FIT.search(source):
            return False
        if _USES_FIT.search(source):
            return True
    return False


def pytest_collection_modifyitems(items):
    # The examples use a map fit for speed; its warning that draws repeat the point (in
    # plots of intervals, allocation, comparisons) is known and would only clutter them.
    for item in items:
        if hasattr(item, "dtest"):
            item.add_marker(pytest.mark.filterwarnings("ignore:a 'map' fit is a point estimate"))


@pytest.fixture(scope="session")
def example_data():
    import bayes_lsl as bl

    return bl.load_example()


@pytest.fixture(scope="session")
def example_fit(example_data):
    import bayes_lsl as bl

    return bl.fit(example_data, K=2, method="map", seed=1, progress=False)


@pytest.fixture(autouse=True)
def _doctest_names(request, doctest_namespace):
    """Fill ``doctest_namespace`` for doctests only (``fit`` when the doctest reads it); close their figures."""
    dtest = getattr(request.node, "dtest", None)  # what marks a doctest item
    if dtest is None:
        yield
        return
    import matplotlib

    matplotlib.use("Agg")  # doctests never show figures
    import matplotlib.pyplot as plt

    import bayes_lsl as bl

    doctest_namespace["bl"] = bl
    doctest_namespace["data"] = request.getfixturevalue("example_data")
    if _needs_fit(dtest.examples):
        doctest_namespace["fit"] = request.getfixturevalue("example_fit")
    yield
    plt.close("all")
