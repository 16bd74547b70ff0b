# SPDX-License-Identifier: MIT
# The fake_device fixture removes its devices whatever the test did: each case runs a test of
# its own in a pytest subprocess and checks the outcome and that the node is gone.
import os

import pytest

CONFTEST = 'pytest_plugins = ["fusd.pytest_plugin"]\n'


def run_inner(pytester, devname, body):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=f"""
import errno, os, threading
DEV = {devname!r}
{body}
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert not os.path.lexists(devname), f"{devname} left behind"
    return result


def test_node_gone_after_a_failing_test(pytester, devname):
    result = run_inner(pytester, devname, """
def test_fails(fake_device):
    fake_device(DEV, read=lambda req: b"x")
    assert os.path.lexists(DEV)
    assert False, "the test fails"
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the test fails*"])


def test_node_gone_after_a_test_raised_with_a_call_waiting(pytester, devname):
    result = run_inner(pytester, devname, """
def test_raises(fake_device):
    kept = []
    arrived = threading.Event()
    def read(req):
        kept.append(req)
        arrived.set()
    fake_device(DEV, read=read)
    got = {}
    def reader():
        fd = os.open(DEV, os.O_RDONLY)
        try:
            os.read(fd, 1)
        except OSError as e:
            got["errno"] = e.errno
        os.close(fd)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert arrived.wait(120)
    raise KeyError("boom")
""")
    result.assert_outcomes(failed=1)


def test_an_unchecked_callback_error_fails_the_test(pytester, devname):
    result = run_inner(pytester, devname, """
def test_callback_raises(fake_device):
    def read(req):
        raise ZeroDivisionError("in the fake")
    fake_device(DEV, read=read)
    fd = os.open(DEV, os.O_RDONLY)
    try:
        os.read(fd, 1)
    except OSError as e:
        assert e.errno == errno.EIO
    os.close(fd)
""")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*a callback raised*", "*ZeroDivisionError: in the fake*"])
