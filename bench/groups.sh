#!/usr/bin/env bash
# Consumer-group benchmark: builds release, measures the disk reference (4 KiB appends with
# fdatasync after each, on the broker's file system), starts a broker on a scratch directory with
# group.initial.rebalance.delay.ms 0, runs `group_bench rebalance` for each group size and
# `group_bench commits` with 1 and 100 partitions per request, stops the broker with SIGTERM and
# writes bench/RESULTS-groups.md. About 1 to 2 minutes of measuring.
#
# Usage: bench/groups.sh
#   env: TIDELOG_BIN (broker binary; when set the broker is not built) [default: target/release/tidelog]
#        CARGO_TARGET_DIR, MEMBERS [default: "10 100"], ROUNDS [5], HEARTBEAT_MS [100],
#        CONNECTIONS [4], IN_FLIGHT [16], DURATION_S [10], DISK_REF_BYTES [8 MiB]
set -euo pipefail

cd "$(dirname "$0")/.."
MEMBERS=${MEMBERS:-"10 100"}
ROUNDS=${ROUNDS:-5}
HEARTBEAT_MS=${HEARTBEAT_MS:-100}
CONNECTIONS=${CONNECTIONS:-4}
IN_FLIGHT=${IN_FLIGHT:-16}
DURATION_S=${DURATION_S:-10}
DISK_REF_BYTES=${DISK_REF_BYTES:-$((8 * 1024 * 1024))}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [[ -n "${TIDELOG_BIN:-}" ]]; then
    cargo build --release -p tidelog-bench
    BROKER=$TIDELOG_BIN
else
    cargo build --release -p tidelog -p tidelog-bench
    BROKER=$TARGET_DIR/release/tidelog
fi
BENCH=$TARGET_DIR/release/tidelog-bench
GROUP_BENCH=$TARGET_DIR/release/group_bench
[[ -x "$BROKER" ]] || { echo "no broker binary at $BROKER" >&2; exit 1; }

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tidelog-groups.XXXXXX")
BROKER_PID=""
cleanup() {
    local status=$?
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID"
        wait "$BROKER_PID" || true
    fi
    if [[ $status -ne 0 && -f "$SCRATCH/broker.log" ]]; then
        echo "== last lines of the broker log" >&2
        tail -n 40 "$SCRATCH/broker.log" >&2
    fi
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

# A port that is free right now.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000)))
mkdir -p "$SCRATCH/data" "$SCRATCH/ref"

echo "== disk reference in $SCRATCH"
REF_JSON=$("$BENCH" disk-ref --dir "$SCRATCH/ref" --block-bytes 4096 --total-bytes "$DISK_REF_BYTES" | tail -n1)
echo "$REF_JSON"
field() { # field JSON NAME
    echo "$1" | sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p"
}
REF_SYNCS=$(field "$REF_JSON" syncs_per_s)
[[ -n "$REF_SYNCS" ]] || { echo "disk-ref printed no syncs_per_s" >&2; exit 1; }

echo "== broker on 127.0.0.1:$PORT"
BROKER_CMD="$BROKER --listen 127.0.0.1:$PORT --data-dir $SCRATCH/data --group-initial-rebalance-delay-ms 0"
$BROKER_CMD >"$SCRATCH/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    kill -0 "$BROKER_PID" 2>/dev/null || { echo "broker exited" >&2; exit 1; }
    sleep 0.1
done

COMMANDS=()
REBALANCE_JSON=()
for N in $MEMBERS; do
    CMD="$GROUP_BENCH rebalance --bootstrap 127.0.0.1:$PORT --members $N --rounds $ROUNDS --heartbeat-ms $HEARTBEAT_MS"
    echo "== $CMD"
    OUT=$($CMD)
    echo "$OUT"
    COMMANDS+=("$CMD")
    REBALANCE_JSON+=("$(echo "$OUT" | tail -n1)")
done
COMMIT_JSON=()
for PER_REQUEST in 1 100; do
    CMD="$GROUP_BENCH commits --bootstrap 127.0.0.1:$PORT --connections $CONNECTIONS --in-flight $IN_FLIGHT --partitions-per-request $PER_REQUEST --topic-partitions 100 --duration-s $DURATION_S --disk-syncs-per-s $REF_SYNCS"
    echo "== $CMD"
    OUT=$($CMD)
    echo "$OUT"
    COMMANDS+=("$CMD")
    COMMIT_JSON+=("$(echo "$OUT" | tail -n1)")
done

kill -TERM "$BROKER_PID"
wait "$BROKER_PID"
BROKER_PID=""

fmt() { awk -v a="$1" 'BEGIN { printf "%.1f", a }'; }
fmt2() { awk -v a="$1" 'BEGIN { printf "%.2f", a }'; }
spread() { # spread JSON PREFIX -> "min / median / max"
    echo "$(fmt "$(field "$1" "${2}_min_ms")") / $(fmt "$(field "$1" "${2}_median_ms")") / $(fmt "$(field "$1" "${2}_max_ms")")"
}

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
if [[ "$COMMIT" != "uncommitted" ]] && ! git diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT (dirty)"; fi
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
FIRST_REBALANCE=${REBALANCE_JSON[0]}
FIRST_COMMIT=${COMMIT_JSON[0]}

{
    cat <<EOF
# Consumer-group benchmark results

Produced by \`bench/groups.sh\` on $(date -u +%Y-%m-%dT%H:%MZ). Commit: $COMMIT.
Machine: $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r); scratch file system: $(df -T "$SCRATCH" | awk 'NR==2 {print $2}').
The machine may be shared; numbers are for comparison within one run.

## Reference (same file system, same run)

4 KiB sequential appends with \`fdatasync\` after each (\`tidelog-bench disk-ref\`): $(fmt "$REF_SYNCS") syncs/s.

## Rebalance (classic protocol, heartbeat every $HEARTBEAT_MS ms)

JoinGroup v$(field "$FIRST_REBALANCE" join_group_version), SyncGroup v$(field "$FIRST_REBALANCE" sync_group_version), Heartbeat v$(field "$FIRST_REBALANCE" heartbeat_version), LeaveGroup v$(field "$FIRST_REBALANCE" leave_group_version); broker started with \`--group-initial-rebalance-delay-ms 0\`.
Each member is a tokio task on its own connection; the topic has 2 x members partitions and the
leader assigns contiguous ranges. Milliseconds, min / median / max over $ROUNDS rounds:

- **empty**: all members join a fresh, empty group at once (a fresh group per round); from the
  first JoinGroup sent until every member holds a SyncGroup answer for one generation.
- **join**: one new member joins a settled group of members - 1; from its first JoinGroup
  (answered MEMBER_ID_REQUIRED on v4+, KIP-394) until all members hold a SyncGroup answer for
  the new generation. The others learn of the rebalance on their next heartbeat, so this
  includes up to one heartbeat interval.
- **leave**: the oldest follower of a settled group leaves with LeaveGroup; from that request
  until the remaining members hold a SyncGroup answer for the new generation. Join and leave
  alternate in one long-lived group, one pair per round.

| members | empty | generations to settle (empty, max) | join | leave | all leave at once |
|---|---|---|---|---|---|
EOF
    for JSON in "${REBALANCE_JSON[@]}"; do
        echo "| $(field "$JSON" members) | $(spread "$JSON" empty) | $(field "$JSON" empty_generations_max) | $(spread "$JSON" join) | $(spread "$JSON" leave) | $(spread "$JSON" all_leave) |"
    done
    cat <<EOF

## Offset commits (OffsetCommit v$(field "$FIRST_COMMIT" offset_commit_version), $CONNECTIONS connections x $IN_FLIGHT in flight, $DURATION_S s each)

Simple commits (generation -1, empty member id) to a group without members; the broker makes
each commit durable (fdatasync) before answering. Afterwards OffsetFetch must return, for every
partition, the last acknowledged commit of one of the connections.

| partitions per request | commits/s | partition offsets/s | p50 ms | p99 ms | commits/s per fdatasync/s |
|---|---|---|---|---|---|
EOF
    for JSON in "${COMMIT_JSON[@]}"; do
        echo "| $(field "$JSON" partitions_per_request) | $(fmt "$(field "$JSON" commits_per_s)") | $(fmt "$(field "$JSON" partition_offsets_per_s)") | $(fmt2 "$(field "$JSON" p50_ms)") | $(fmt2 "$(field "$JSON" p99_ms)") | $(fmt2 "$(field "$JSON" commits_per_sync)") |"
    done
    cat <<EOF

A ratio above 1 means commits share fdatasyncs (group commit across connections).

## Commands

\`\`\`
$BROKER_CMD
$BENCH disk-ref --dir <scratch> --block-bytes 4096 --total-bytes $DISK_REF_BYTES
EOF
    printf '%s\n' "${COMMANDS[@]}"
    cat <<EOF
\`\`\`

## Raw

\`\`\`
$REF_JSON
EOF
    printf '%s\n' "${REBALANCE_JSON[@]}" "${COMMIT_JSON[@]}"
    echo '```'
} >bench/RESULTS-groups.md
echo "== wrote bench/RESULTS-groups.md"
