#!/bin/bash
# corrupt.sh — damage a repository at random (seeded) and check that Berth
# notices: flip one byte, truncate, or delete a pack, a snapshot file or
# catalog.db, one damage per trial, on a fresh copy of the same repository.
#
#   BERTH=build/berth CORRUPT_TRIALS=60 TORTURE_SEED=1234 [CORRUPT_WHAT=pack|snapshot|catalog.db] tests/torture/corrupt.sh
#
# Pack or snapshot-file damage: `check --read-data` exits 5, and names every
# snapshot that no longer restores; every snapshot either fails to restore or
# restores identical (never wrong bytes with exit 0); after `catalog rebuild`
# every snapshot that still restored restores identical.  catalog.db damage:
# check exits non-zero naming 'berth catalog rebuild', or, when it passes,
# the damage is harmless (every snapshot restores identical and the snapshot
# list and file index read as before: a flip in a free page or unused
# bytes cannot be noticed, nor does it matter); then `catalog rebuild`
# succeeds, check exits 0 and every snapshot restores identical.  Ends with a table: target/damage, trials, detected, failures.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH to the berth binary}"
TRIALS=${CORRUPT_TRIALS:-60}
SEED=${TORTURE_SEED:-$(( $(date +%s) % 100000 ))}
TIMEOUT=${TORTURE_TIMEOUT:-300}
TREECMP="$here/../e2e/treecmp.py"
RANDOM=$SEED
echo "corrupt.sh: TORTURE_SEED=$SEED CORRUPT_TRIALS=$TRIALS (rerun with these to reproduce)"

W=$(mktemp -d "${TMPDIR:-/tmp}/berth-torture-corrupt.XXXXXX")
export BERTH_REPO="$W/repo" BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=warning
unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
SRC="$W/src" REF="$W/ref" LOG="$W/log"
mkdir -p "$SRC/sub" "$REF"
b() { timeout -k 5 "$TIMEOUT" "$BERTH" "$@"; }
listed() { b --json snapshots 2>/dev/null | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]'; }

b init > /dev/null || { echo "corrupt.sh: init failed"; exit 1; }
head -c 1500000 /dev/urandom > "$SRC/shared"; seq 1 100000 > "$SRC/sub/text"; ln -s shared "$SRC/link"
for k in 1 2 3 4; do
        head -c $(( 200000 * k )) /dev/urandom > "$SRC/own"
        echo "$k" > "$SRC/sub/k"
        id=$(b backup --path "$SRC" --name t | tail -n 1) || exit 1
        cp -a "$SRC" "$REF/$id"
done
IDS=$(listed)
listing() { b --json snapshots 2>&1; b --json find --name t '*' 2>&1; }
LISTING=$(listing)
cp -a "$BERTH_REPO" "$W/pristine"

# restores_ok ID: 0 identical, 1 refused, 2 exit 0 with wrong contents
restores_ok() {
        rm -rf "$W/out"
        b restore "$1" --target "$W/out" >> "$LOG" 2>&1 || { rm -rf "$W/out"; return 1; }
        python3 "$TREECMP" "$REF/$1" "$W/out" >> "$LOG" 2>&1 || return 2
        rm -rf "$W/out"
        return 0
}

declare -A N_T N_DET N_F N_HARMLESS
ROWS=()
failures=0
for trial in $(seq 1 "$TRIALS"); do
        rm -rf "$BERTH_REPO" && cp -a "$W/pristine" "$BERTH_REPO"
        pick=$(( RANDOM % 5 ))
        case ${CORRUPT_WHAT:-} in pack) pick=0 ;; snapshot) pick=2 ;; catalog.db) pick=4 ;; esac
        case $pick in
        0|1) what=pack; file=$(find "$BERTH_REPO/packs" -type f | sort | shuf -n 1 --random-source=<(yes "$RANDOM")) ;;
        2|3) what=snapshot; file=$(find "$BERTH_REPO/snapshots" -type f | sort | shuf -n 1 --random-source=<(yes "$RANDOM")) ;;
        4) what=catalog.db; file="$BERTH_REPO/catalog.db" ;;
        esac
        how=$(printf 'flip\ntruncate\ndelete\n' | sed -n "$(( RANDOM % 3 + 1 ))p")
        size=$(stat -c %s "$file")
        off=$(( (RANDOM * 32768 + RANDOM) % size ))
        case $how in
        flip) python3 -c 'import sys; f=open(sys.argv[1],"r+b"); o=int(sys.argv[2]); f.seek(o); c=f.read(1); f.seek(o); f.write(bytes([c[0]^(1<<int(sys.argv[3]))]))' "$file" "$off" $(( RANDOM % 8 )) ;;
        truncate) truncate -s "$off" "$file" ;;
        delete) rm -f "$file" ;;
        esac
        row="$what/$how"
        [[ " ${ROWS[*]} " == *" $row "* ]] || ROWS+=("$row")
        N_T[$row]=$(( ${N_T[$row]:-0} + 1 ))
        desc="$how $(basename "$file") at $off of $size"
        echo "== trial $trial: $row: $desc" >> "$LOG"
        fail=""
        out=$(b check --read-data 2>&1); rc=$?
        echo "$out" >> "$LOG"
        # ground truth: which snapshots still restore
        broken=""; intact=""
        for id in $IDS; do
                restores_ok "$id"; r=$?
                case $r in
                0) intact="$intact $id" ;;
                1) broken="$broken $id" ;;
                2) fail="$fail; restore of ${id:0:12} exited 0 with wrong contents" ;;
                esac
        done
        if [ "$what" != catalog.db ]; then
                if [ "$rc" -eq 5 ]; then N_DET[$row]=$(( ${N_DET[$row]:-0} + 1 ))
                else fail="$fail; check --read-data exited $rc, not 5"; fi
                for id in $broken; do
                        [[ "$out" == *"${id:0:12}"* ]] || fail="$fail; check does not name ${id:0:12}, which no longer restores"
                done
        elif [ "$rc" -ne 0 ]; then
                N_DET[$row]=$(( ${N_DET[$row]:-0} + 1 ))
                [[ "$out" == *"catalog rebuild"* ]] || fail="$fail; check exited $rc without the fix ('berth catalog rebuild')"
        else
                # Not noticed: only a change nothing reads (a free page, an
                # unused header byte, the slack of a page) may go unnoticed,
                # so everything must read as before.
                N_HARMLESS[$row]=$(( ${N_HARMLESS[$row]:-0} + 1 ))
                [ -z "$broken" ] || fail="$fail; check passes, but${broken} no longer restore"
                [ "$(listing)" = "$LISTING" ] || fail="$fail; check passes, but 'snapshots' lists something else"
        fi
        if ! b catalog rebuild >> "$LOG" 2>&1; then
                fail="$fail; catalog rebuild failed"
        else
                for id in $intact; do
                        restores_ok "$id" || fail="$fail; ${id:0:12} restored before catalog rebuild, not after"
                done
                if [ "$what" = catalog.db ]; then
                        b check --read-data >> "$LOG" 2>&1 || fail="$fail; check fails after catalog rebuild"
                        for id in $IDS; do restores_ok "$id" || fail="$fail; ${id:0:12} does not restore after catalog rebuild"; done
                fi
        fi
        if [ -n "$fail" ]; then
                failures=$(( failures + 1 )); N_F[$row]=$(( ${N_F[$row]:-0} + 1 ))
                echo "FAIL trial $trial (TORTURE_SEED=$SEED): $row ($desc): ${fail#; }"
        fi
done

printf '\ncorruption, TORTURE_SEED=%s\n' "$SEED"
printf '%-22s %7s %9s %9s %9s\n' damage trials detected harmless failures
for row in $(printf '%s\n' "${ROWS[@]}" | sort); do
        printf '%-22s %7d %9d %9d %9d\n' "$row" "${N_T[$row]}" "${N_DET[$row]:-0}" "${N_HARMLESS[$row]:-0}" "${N_F[$row]:-0}"
done
echo "(detected: check --read-data exited 5 for pack/snapshot damage, non-zero naming 'berth catalog rebuild' for"
echo " catalog.db damage; harmless: catalog.db damage check passed, and every snapshot, the snapshot list and"
echo " the file index read as before: a free page or unused bytes)"
if [ "$failures" -gt 0 ]; then echo "corrupt.sh: $failures failure(s); kept $W (log: $LOG)"; exit 1; fi
rm -rf "$W"
exit 0
