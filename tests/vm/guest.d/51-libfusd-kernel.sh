#!/bin/bash
# libfusd's integration tests on the kernel backend (fusd.ko, loaded by tests/vm/init).
exec "$FUSD_REPO/tests/vm/on-backend.sh" libfusd kernel /dev/fusd
