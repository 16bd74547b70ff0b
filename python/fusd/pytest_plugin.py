# SPDX-License-Identifier: MIT
"""pytest fixtures for fake devices answered by Python functions, for one test only.

    def test_modem(fake_device):
        dev = fake_device("/dev/ttyFAKE0", read=lambda req: b"OK\\r\\n")
        with open(dev.path, "rb", buffering=0) as f:
            assert f.read(4) == b"OK\\r\\n"

Loaded by the `pytest11` entry point of the installed package, or by
`pytest_plugins = ["fusd.pytest_plugin"]` in a conftest.py.

fake_device(name, **options) takes Loop.add()'s arguments (mode defaults to 0o666) and returns
the fusd.Device. Its devices are served from a thread of their own and removed when the test
ends, whatever happened: passed, failed, raised, or a callback raised. A callback that raised
(its caller got EIO) fails the test at teardown, unless the test took the error out of
`fake_device.errors` (a list of exceptions) to check it.
"""
import os

import pytest

import fusd


class FakeDevices:
    """The fake_device fixture's value: call it to add a device."""

    def __init__(self):
        self.errors = []
        self.loop = None
        self.paths = []

    def __call__(self, name, **options):
        if self.loop is None:
            self.loop = fusd.Loop()
            self.loop.on_error = self.errors.append
            self.loop.start()
        options.setdefault("mode", 0o666)
        options.setdefault("command_line", "pytest fake_device")
        device = self.loop.add(name, **options)
        self.paths.append(device.path)
        return device

    def close(self):
        if self.loop is not None:
            self.loop.close()

    def leftovers(self):
        return [p for p in self.paths if os.path.lexists(p)]


@pytest.fixture
def fake_device():
    """Make fake devices answered by Python functions for this test; gone after it."""
    fakes = FakeDevices()
    try:
        yield fakes
    finally:
        fakes.close()
    left = fakes.leftovers()
    if left:
        pytest.fail(f"fake_device: left behind after the test: {', '.join(left)}", pytrace=False)
    if fakes.errors:
        lines = [f"{type(e).__name__}: {e}" + "".join(f"\n  {n}" for n in getattr(e, "__notes__", []))
                 for e in fakes.errors]
        pytest.fail("fake_device: a callback raised (its caller got EIO):\n" + "\n".join(lines), pytrace=False)
