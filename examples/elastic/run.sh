#!/usr/bin/env bash
# Prints who this worker is, then every event the job master sends it, for RUN_SECONDS.
set -uo pipefail
echo "worker ${T2_WORKER_ID} of ${T2_NUM_WORKERS} up (restart ${T2_RESTART_COUNT})"
t2 worker events &
trap 'kill %1 2>/dev/null' EXIT
sleep "${RUN_SECONDS:-120}"
echo "worker ${T2_WORKER_ID}: done; the job has $(t2 worker info | grep -o '"num_workers":[0-9]*' | cut -d: -f2) workers"
