#!/usr/bin/env bash
echo "worker ${T2_WORKER_ID} failing on purpose (restart ${T2_RESTART_COUNT})" >&2
exit 1
