#!/bin/bash
# crash.sh — kill -9 at random instants of backup, forget, prune and catalog
# rebuild on a local repository, and check what is left after each kill.
#
#   BERTH=build/berth TRIALS=200 TORTURE_SEED=1234 TORTURE_MB=256 tests/torture/crash.sh
#
# Each trial picks an operation (seeded), starts it, sleeps a random 0..N ms
# (N adapts to how long the operation took when it last ran whole) and sends
# SIGKILL.  Then: `berth check` exits 0; every snapshot that was committed
# before the crash (and that the operation was not asked to remove) is still
# listed and restores byte- and metadata-identical to the tree it was taken
# from (tests/e2e/treecmp.py); the interrupted operation reruns with exit 0.
# Ends with a table: operation, trials, kills that landed mid-run, failures.
# Exit status: 0 when no trial failed.  A failing trial's directory is kept.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH to the berth binary}"
TRIALS=${TRIALS:-200}
SEED=${TORTURE_SEED:-$(( $(date +%s) % 100000 ))}
MB=${TORTURE_MB:-256}
TIMEOUT=${TORTURE_TIMEOUT:-600}
TREECMP="$here/../e2e/treecmp.py"
RANDOM=$SEED
echo "crash.sh: TORTURE_SEED=$SEED TRIALS=$TRIALS TORTURE_MB=$MB (rerun with these to reproduce)"

W=$(mktemp -d "${TMPDIR:-/tmp}/berth-torture-crash.XXXXXX")
export BERTH_REPO="$W/repo" BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=warning
unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
SRC="$W/src"
REF="$W/ref"            # REF/<id>: the var/ part of the source when <id> was taken
LOG="$W/log"
mkdir -p "$SRC/bulk" "$SRC/var" "$REF"

b() { timeout -k 5 "$TIMEOUT" "$BERTH" "$@"; }

# The bulk part (never changed after this): random, text, zeros, sparse, many small files.
mkdata() {
        local d=$SRC/bulk i n=$(( MB / 8 )) ; [ "$n" -ge 1 ] || n=1
        for i in $(seq 1 "$n"); do
                head -c $(( 4 * 1024 * 1024 )) /dev/urandom > "$d/rand$i"
                seq 1 $(( 500000 + i )) | head -c $(( 3 * 1024 * 1024 )) > "$d/text$i"
                head -c $(( 1024 * 1024 )) /dev/zero > "$d/zero$i"
        done
        mkdir -p "$d/small"
        for i in $(seq 1 $(( 200 + MB ))); do printf 'small %d %d\n' "$i" "$RANDOM" > "$d/small/f$i"; done
        truncate -s 32M "$d/sparse" && printf 'in the hole' | dd of="$d/sparse" bs=1 seek=5000000 conv=notrunc 2>/dev/null
        ln -s rand1 "$d/link" && ln "$d/text1" "$d/hard"
        setfattr -n user.k -v v "$d/rand1" 2>/dev/null || true
        chmod 0640 "$d/text1"; touch -d '2001-02-03 04:05:06.5' "$d/zero1"
}

# mutate: change var/ (a new file of random size, one rewritten, one removed)
mutate() {
        local k=$1
        head -c $(( (RANDOM % 2048 + 1) * 1024 )) /dev/urandom > "$SRC/var/new$k"
        printf 'trial %d\n' "$k" > "$SRC/var/counter"
        local old; old=$(ls "$SRC/var" | grep '^new' | head -n 1)
        [ "$(ls "$SRC/var" | wc -l)" -gt 6 ] && rm -f "$SRC/var/$old"
        return 0
}

listed() { b --json snapshots 2>/dev/null | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]'; }

# record_new: every listed snapshot without a reference was taken from var/ as it is now
record_new() {
        local id
        for id in $(listed); do [ -d "$REF/$id" ] || cp -a "$SRC/var" "$REF/$id"; done
}

# verify ID: restore it whole and compare with its source
verify() {
        local id=$1 out="$W/out"
        rm -rf "$out"
        if ! b restore "$id" --target "$out" >> "$LOG" 2>&1; then echo "restore $id failed"; return 1; fi
        if [ "$(ls "$out" | tr '\n' ' ')" != "bulk var " ]; then echo "restore $id: top level is $(ls "$out")"; return 1; fi
        python3 "$TREECMP" --no-root-times "$SRC/bulk" "$out/bulk" >> "$LOG" 2>&1 || { echo "restore $id: bulk/ differs"; return 1; }
        python3 "$TREECMP" --no-root-times "$REF/$id" "$out/var" >> "$LOG" 2>&1 || { echo "restore $id: var/ differs"; return 1; }
        rm -rf "$out"
}

now_ms() { date +%s%3N; }
declare -A DUR=([backup]=3000 [forget]=60 [prune]=1500 [rebuild]=1500)
declare -A N_TRIALS N_LANDED N_FAIL
OPS=(backup forget prune rebuild)
for op in "${OPS[@]}"; do N_TRIALS[$op]=0; N_LANDED[$op]=0; N_FAIL[$op]=0; done

cmd_of() {
        case $1 in
        backup) echo "backup --path $SRC --name t" ;;
        forget) echo "forget --name t --keep-last $KEEP" ;;
        prune) echo "prune" ;;
        rebuild) echo "catalog rebuild" ;;
        esac
}

mkdata
b init > /dev/null || { echo "crash.sh: init failed"; exit 1; }
t0=$(now_ms)
for k in 1 2 3; do mutate "$k"; b backup --path "$SRC" --name t > /dev/null || exit 1; record_new; done
DUR[backup]=$(( ($(now_ms) - t0) / 3 ))
failures=0
for trial in $(seq 1 "$TRIALS"); do
        op=${OPS[$(( RANDOM % 4 ))]}
        before=$(listed)
        nbefore=$(printf '%s\n' "$before" | grep -c . || true)
        # forget removes 1 to 4 snapshots (more work: more instants to land in)
        KEEP=$(( nbefore - 1 - RANDOM % 4 )); [ "$KEEP" -ge 2 ] || KEEP=2; [ "$nbefore" -gt 2 ] || KEEP=$nbefore
        # forget and prune need something to do: garbage comes from forgetting
        if [ "$op" = prune ] && [ "$nbefore" -gt 3 ]; then
                b forget --name t --keep-last $(( nbefore - 1 )) > /dev/null 2>&1; before=$(listed)
        fi
        [ "$op" = backup ] && mutate "$((trial + 3))"
        # forget: the snapshots the policy may remove (the oldest)
        maygo=""
        [ "$op" = forget ] && maygo=$(printf '%s\n' "$before" | head -n $(( nbefore - KEEP )))
        cmd=$(cmd_of "$op")
        delay=$(( RANDOM * 32768 + RANDOM )); delay=$(( delay % (DUR[$op] * 12 / 10 + 1) ))
        echo "== trial $trial: $op ($cmd), kill after ${delay} ms" >> "$LOG"
        # shellcheck disable=SC2086
        "$BERTH" $cmd >> "$LOG" 2>&1 &
        pid=$!
        sleep "$(printf '%d.%03d' $(( delay / 1000 )) $(( delay % 1000 )))"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null; rc=$?
        N_TRIALS[$op]=$(( N_TRIALS[$op] + 1 ))
        [ "$rc" -eq 137 ] && N_LANDED[$op]=$(( N_LANDED[$op] + 1 ))
        fail=""
        if ! b check >> "$LOG" 2>&1; then fail="check failed after the kill"; fi
        after=$(listed)
        for id in $before; do
                if ! printf '%s\n' "$after" | grep -qx "$id" && ! printf '%s\n' "$maygo" | grep -qx "$id"; then
                        fail="$fail; snapshot $id committed before the crash is gone"
                fi
        done
        [ "$op" = backup ] && record_new
        # the newest committed snapshot and one at random restore identical
        newest=$(printf '%s\n' "$after" | tail -n 1)
        n=$(printf '%s\n' "$after" | grep -c . || true)
        pick=""; [ "$n" -gt 0 ] && pick=$(printf '%s\n' "$after" | sed -n "$(( RANDOM % n + 1 ))p")
        for id in $(printf '%s\n%s\n' "$newest" "$pick" | sort -u); do
                [ -n "$id" ] || continue
                if [ ! -d "$REF/$id" ]; then fail="$fail; snapshot $id appeared from nowhere"; continue; fi
                msg=$(verify "$id") || fail="$fail; $msg"
        done
        # the interrupted operation reruns cleanly (and its duration sets the next kill range)
        t0=$(now_ms)
        # shellcheck disable=SC2086
        if ! b $cmd >> "$LOG" 2>&1; then fail="$fail; rerun of '$cmd' failed"; fi
        # (a rerun of forget has nothing left to do: its range stays fixed)
        d=$(( $(now_ms) - t0 )); [ "$d" -gt 20 ] && [ "$op" != forget ] && DUR[$op]=$d
        [ "$op" = backup ] && record_new
        if ! b check >> "$LOG" 2>&1; then fail="$fail; check failed after the rerun"; fi
        if [ -n "$fail" ]; then
                failures=$(( failures + 1 )); N_FAIL[$op]=$(( N_FAIL[$op] + 1 ))
                echo "FAIL trial $trial (TORTURE_SEED=$SEED): berth $cmd killed after ${delay} ms: ${fail#; }"
        fi
        # keep the repository from growing without bound
        if [ "$(listed | wc -l)" -gt 10 ]; then b forget --name t --keep-last 7 > /dev/null 2>&1; b prune > /dev/null 2>&1; fi
done
# at the end every snapshot restores
for id in $(listed); do
        msg=$(verify "$id") || { failures=$(( failures + 1 )); echo "FAIL final: $msg"; }
done
if ! b check --read-data >> "$LOG" 2>&1; then failures=$(( failures + 1 )); echo "FAIL final: check --read-data"; fi

printf '\ncrash injection (kill -9), TORTURE_SEED=%s\n' "$SEED"
printf '%-18s %7s %9s %9s\n' operation trials mid-run failures
for op in "${OPS[@]}"; do
        name=$op; [ "$op" = rebuild ] && name="catalog rebuild"
        printf '%-18s %7d %9d %9d\n' "$name" "${N_TRIALS[$op]}" "${N_LANDED[$op]}" "${N_FAIL[$op]}"
done
if [ "$failures" -gt 0 ]; then
        echo "crash.sh: $failures failure(s); kept $W (log: $LOG)"
        exit 1
fi
rm -rf "$W"
exit 0
