#!/bin/bash
# fusdctl's bats suite (the tests tagged `backend`) on the kernel backend (fusd.ko).
exec "$FUSD_REPO/tests/vm/on-backend.sh" bats kernel /dev/fusd
