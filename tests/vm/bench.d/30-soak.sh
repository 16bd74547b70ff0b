#!/bin/bash
# The soak (bench/soak.sh) on the kernel module and on CUSE, FUSD_SOAK_SECONDS each (default 600).
exec "$FUSD_REPO/bench/soak.sh" "${FUSD_SOAK_SECONDS:-600}" kernel cuse
