#!/usr/bin/env bash
# Storage benchmarks P4–P7 (BENCHMARKS.md): starts a throwaway Postgres
# (durable: fsync and synchronous_commit on), runs meridian-store-bench,
# removes the server. Extra arguments go to the bench binary, e.g.
#   scripts/bench-store.sh --fill 2000000 --queries 100
# or, without P4 and P7 (the TraceQL figures of issue 19):
#   scripts/bench-store.sh --p4-spans 0 --naive-spans 0 --load-rate 50000 \
#       --p7 off --fill 20000000 --queries 100
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$(pwd)/target}
cargo build --profile dist --locked -p integration-tests --bin meridian-store-bench
dir=$(mktemp -d /var/tmp/meridian-bench-pg.XXXXXX)
chmod 755 "$dir"
trap 'scripts/pg.sh stop "$dir"' EXIT
export MERIDIAN_PG_CONF="shared_buffers = 4GB
effective_cache_size = 12GB
maintenance_work_mem = 512MB
max_wal_size = 8GB
checkpoint_timeout = 15min
wal_compression = on"
url=$(scripts/pg.sh start "$dir")
echo "postgres: $url ($(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB)"
"$target/dist/meridian-store-bench" --pg "$url" "$@"
