#!/bin/bash
# fusdctl's bats suite (the tests tagged `backend`) on the CUSE backend.
exec "$FUSD_REPO/tests/vm/on-backend.sh" bats cuse /dev/cuse
