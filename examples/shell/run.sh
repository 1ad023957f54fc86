#!/usr/bin/env bash
# Every worker prints who it is, the worker list it sees, and passes two barriers.
set -euo pipefail
echo "worker ${T2_WORKER_ID} of ${T2_NUM_WORKERS} (job ${T2_JOB_ID}, restart ${T2_RESTART_COUNT}, port ${T2_WORKER_PORT})"
workers=$(t2 worker list)
count=$(grep -o '"id":' <<<"$workers" | wc -l)
echo "worker list: ${count} entries, sha256 $(sha256sum <<<"$workers" | cut -c1-16)"
echo "barrier 1: $(t2 worker barrier)"
echo "barrier 2: $(t2 worker barrier)"
