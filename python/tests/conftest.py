# SPDX-License-Identifier: MIT
# The fusd Python package's own tests. They serve devices on whatever backend $FUSD_BACKEND
# names (auto by default): FUSE on the host, CUSE and the kernel backend in the QEMU guest
# (tests/vm/guest.d/52-python.sh). Device names carry the test process's pid.
import itertools
import os

import pytest

pytest_plugins = ["fusd.pytest_plugin", "pytester"]

_numbers = itertools.count()


@pytest.fixture
def devname():
    """A fresh /dev name for this test."""
    return f"/dev/fusd-py-{os.getpid()}-{next(_numbers)}"


@pytest.fixture
def backend():
    """The backend the tests' devices get: what Loop.add picks with backend='auto'."""
    import fusd
    wanted = os.environ.get("FUSD_BACKEND", "auto")
    if wanted != "auto":
        return wanted
    return next(s.backend for s in fusd.probe_backends() if s.usable)
