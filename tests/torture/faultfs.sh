#!/bin/bash
# faultfs.sh — backup and restore with write/fsync/rename failing at the Nth
# call (tests/torture/faultfs.c through LD_PRELOAD), for N = 1, 2, ... until
# the Nth call no longer comes (N grows geometrically past NLINEAR).
#
#   BERTH=build/berth FAULTFS=build/tests/faultfs.so [TORTURE_SEED=] [NLINEAR=20] [NMAX=100000]
#   tests/torture/faultfs.sh
#
# After each run: no crash or hang (exit < 128, under timeout -k); a failure
# exits non-zero with an "error:" message; `berth check` passes; the committed
# snapshots restore identical; a backup that says it succeeded restores
# identical; a command whose fsync/fdatasync failed does not exit 0.  For restore (faults scoped to the target's parent directory):
# the target is either absent as before or exactly the snapshot, and the
# files around it are untouched.  Ends with a summary table.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH to the berth binary}"
: "${FAULTFS:?set FAULTFS to build/tests/faultfs.so}"
SEED=${TORTURE_SEED:-$(( $(date +%s) % 100000 ))}
NLINEAR=${NLINEAR:-20}
NMAX=${NMAX:-100000}
TIMEOUT=${TORTURE_TIMEOUT:-300}
TREECMP="$here/../e2e/treecmp.py"
RANDOM=$SEED
echo "faultfs.sh: TORTURE_SEED=$SEED NLINEAR=$NLINEAR NMAX=$NMAX (rerun with these to reproduce)"

W=$(mktemp -d "${TMPDIR:-/tmp}/berth-torture-fault.XXXXXX")
export BERTH_REPO="$W/repo" BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=warning
unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
SRC="$W/src" REF="$W/ref" LOG="$W/log" FLOG="$W/faults"
mkdir -p "$SRC/sub" "$REF"
b() { timeout -k 5 "$TIMEOUT" "$BERTH" "$@"; }
listed() { b --json snapshots 2>/dev/null | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]'; }

for i in 1 2 3; do head -c $(( (RANDOM % 1024 + 512) * 1024 )) /dev/urandom > "$SRC/rand$i"; done
seq 1 300000 > "$SRC/sub/text"; ln -s ../rand1 "$SRC/sub/link"; ln "$SRC/rand2" "$SRC/hard"
for i in $(seq 1 40); do echo "small $i" > "$SRC/sub/s$i"; done
truncate -s 8M "$SRC/sparse"; setfattr -n user.k -v v "$SRC/rand1" 2>/dev/null || true
chmod 0600 "$SRC/rand3"; touch -d '2001-02-03 04:05:06.5' "$SRC/sub/s1"

b init > /dev/null || { echo "faultfs.sh: init failed"; exit 1; }
record_new() { local id; for id in $(listed); do [ -d "$REF/$id" ] || cp -a "$SRC" "$REF/$id"; done; }
b backup --path "$SRC" --name t > /dev/null && record_new
FIRST=$(listed | head -n 1)

verify() {
        local id=$1 out="$W/out"
        rm -rf "$out"
        b restore "$id" --target "$out" >> "$LOG" 2>&1 || { echo "restore $id failed"; return 1; }
        python3 "$TREECMP" "$REF/$id" "$out" >> "$LOG" 2>&1 || { echo "restore $id differs from its source"; return 1; }
        rm -rf "$out"
}

declare -A N_RUNS N_FIRED N_FAILED N_ABSORBED N_BAD
ROWS=()
failures=0
# run_faulted OP CALLS N ERRNO SCOPE CMD...: sets rc, fired, errout
run_faulted() {
        local calls=$1 n=$2 err=$3 scope=$4; shift 4
        : > "$FLOG"
        errout=$(FAULT_AT=$n FAULT_CALLS=$calls FAULT_ERRNO=$err FAULT_PATH=$scope FAULT_LOG=$FLOG \
                LD_PRELOAD=$FAULTFS ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
                timeout -k 5 "$TIMEOUT" "$BERTH" "$@" 2>&1 > /dev/null)
        rc=$?
        fired=0; [ -s "$FLOG" ] && fired=1
        printf '== %s at %s #%d (%s): rc %d, fired %d\n%s\n' "$*" "$calls" "$n" "$err" "$rc" "$fired" "$errout" >> "$LOG"
}

judge() {       # judge ROW N ERR FAILTEXT
        local row=$1 n=$2 err=$3 fail=$4
        N_RUNS[$row]=$(( ${N_RUNS[$row]:-0} + 1 ))
        [ "$fired" = 1 ] && N_FIRED[$row]=$(( ${N_FIRED[$row]:-0} + 1 ))
        if [ "$fired" = 1 ]; then
                if [ "$rc" -eq 0 ]; then N_ABSORBED[$row]=$(( ${N_ABSORBED[$row]:-0} + 1 ))
                else N_FAILED[$row]=$(( ${N_FAILED[$row]:-0} + 1 )); fi
        fi
        if [ -n "$fail" ]; then
                failures=$(( failures + 1 )); N_BAD[$row]=$(( ${N_BAD[$row]:-0} + 1 ))
                echo "FAIL $row: FAULT_AT=$n FAULT_ERRNO=$err (TORTURE_SEED=$SEED): ${fail#; }"
        fi
}

common_checks() {       # prints what is wrong, if anything
        local fail=""
        if [ "$rc" -ge 124 ]; then fail="$fail; killed, crashed or hung (exit $rc)"; fi
        if [ "$rc" -ne 0 ] && [[ "$errout" != *"error"* ]]; then fail="$fail; exit $rc without an error message"; fi
        # a failed fsync/fdatasync means the data may not be on disk: the
        # command must not report success
        # must not report success.  Known gap: SQLite syncs the directory
        # of catalog.db after creating catalog.db-wal and ignores a failure
        # there (only the repository directory itself); counted apart.
        if [ "$fired" = 1 ] && [ "$rc" -eq 0 ] && grep -q 'sync #' "$FLOG"; then
                if grep -q "sync #[0-9]* -> [A-Z]* on $BERTH_REPO\$" "$FLOG"; then
                        echo "$row" >> "$W/sqlite-dirsync"
                else
                        fail="$fail; exit 0 after a failed $(grep -o '[a-z]*sync #[0-9]*.*' "$FLOG" | head -n 1)"
                fi
        fi
        b check >> "$LOG" 2>&1 || fail="$fail; check fails afterwards"
        printf '%s' "$fail"
}

# --- backup ---
for calls in write fsync rename; do
        row="backup/$calls"; ROWS+=("$row")
        n=1
        while [ "$n" -le "$NMAX" ]; do
                err=EIO; [ $(( RANDOM % 2 )) -eq 0 ] && err=ENOSPC
                head -c $(( (RANDOM % 512 + 1) * 1024 )) /dev/urandom > "$SRC/sub/new"
                before=$(listed)
                run_faulted "$calls" "$n" "$err" "$BERTH_REPO" backup --path "$SRC" --name t
                fail=$(common_checks)
                after=$(listed)
                for id in $before; do printf '%s\n' "$after" | grep -qx "$id" || fail="$fail; snapshot $id is gone"; done
                # a new snapshot (whether or not backup said so) was taken from SRC as it is
                record_new
                if [ "$rc" -eq 0 ] && [ "$(printf '%s\n' "$after" | grep -c .)" -le "$(printf '%s\n' "$before" | grep -c .)" ]; then
                        fail="$fail; exit 0 but no new snapshot"
                fi
                for id in $(printf '%s\n%s\n' "$FIRST" "$(printf '%s\n' "$after" | tail -n 1)" | sort -u); do
                        [ -n "$id" ] || continue
                        msg=$(verify "$id") || fail="$fail; $msg"
                done
                judge "$row" "$n" "$err" "$fail"
                [ "$fired" = 1 ] || break
                if [ "$n" -lt "$NLINEAR" ]; then n=$(( n + 1 )); else n=$(( n * 3 / 2 + RANDOM % 3 )); fi
                if [ "$(listed | wc -l)" -gt 6 ]; then b forget --name t --keep-last 3 > /dev/null 2>&1; b prune > /dev/null 2>&1; FIRST=$(listed | head -n 1); fi
        done
done

# --- restore ---
RT="$W/rt"
mkdir -p "$RT/neighbour-dir"; echo neighbour > "$RT/neighbour"; echo inside > "$RT/neighbour-dir/f"
SNAP=$(listed | tail -n 1)
around() { (cd "$RT" && find . -mindepth 1 -path ./out -prune -o -printf '%p %s %m %T@\n' | sort && cat neighbour neighbour-dir/f); }
AROUND=$(around)
for calls in write fsync rename; do
        row="restore/$calls"; ROWS+=("$row")
        n=1
        while [ "$n" -le "$NMAX" ]; do
                err=EIO; [ $(( RANDOM % 2 )) -eq 0 ] && err=ENOSPC
                rm -rf "$RT/out"
                run_faulted "$calls" "$n" "$err" "$RT" restore "$SNAP" --target "$RT/out"
                fail=$(common_checks)
                if [ "$rc" -eq 0 ]; then
                        python3 "$TREECMP" "$REF/$SNAP" "$RT/out" >> "$LOG" 2>&1 || fail="$fail; exit 0 but the target differs from the snapshot"
                elif [ -e "$RT/out" ] && [ -n "$(ls -A "$RT/out" 2>/dev/null)" ]; then
                        if python3 "$TREECMP" "$REF/$SNAP" "$RT/out" >> "$LOG" 2>&1; then :; else
                                fail="$fail; failed and left a partial target ($(ls -A "$RT/out" | head -n 3 | tr '\n' ' '))"
                        fi
                fi
                now=$(around)
                [ "$now" = "$AROUND" ] || fail="$fail; the target's surroundings changed: $(diff <(echo "$AROUND") <(echo "$now") | grep '^[<>]' | head -n 3 | tr '\n' ' ')"
                judge "$row" "$n" "$err" "$fail"
                [ "$fired" = 1 ] || break
                if [ "$n" -lt "$NLINEAR" ]; then n=$(( n + 1 )); else n=$(( n * 3 / 2 + RANDOM % 3 )); fi
        done
done
for id in $(listed); do msg=$(verify "$id") || { failures=$(( failures + 1 )); echo "FAIL final: $msg"; }; done

printf '\nsystem-call faults (LD_PRELOAD faultfs), TORTURE_SEED=%s\n' "$SEED"
printf '%-18s %6s %7s %12s %9s %9s\n' operation runs faulted failed-clean absorbed failures
for row in "${ROWS[@]}"; do
        printf '%-18s %6d %7d %12d %9d %9d\n' "$row" "${N_RUNS[$row]:-0}" "${N_FIRED[$row]:-0}" \
                "${N_FAILED[$row]:-0}" "${N_ABSORBED[$row]:-0}" "${N_BAD[$row]:-0}"
done
echo "(faulted: the Nth call came and failed; failed-clean: the command then exited non-zero with an error;"
echo " absorbed: it exited 0 anyway, and its result was checked like any other; never allowed for fsync but for"
echo " SQLite's own sync of the repository directory after creating catalog.db-wal, which it ignores:" \
        "$(wc -l < "$W/sqlite-dirsync" 2>/dev/null || echo 0) time(s))"
if [ "$failures" -gt 0 ]; then echo "faultfs.sh: $failures failure(s); kept $W (log: $LOG)"; exit 1; fi
rm -rf "$W"
exit 0
