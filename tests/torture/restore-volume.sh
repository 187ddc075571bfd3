#!/bin/bash
# restore-volume.sh — `restore SNAPSHOT --to-volume VOL --force` into a Docker
# volume that holds other files and is used by a running container, under
# system-call faults (faultfs.so: write/fsync/rename failing with EIO or
# ENOSPC at the Nth call, N = 1, 2, ... until the Nth call no longer comes)
# and under kill -9 at seeded random instants.
#
#   BERTH=build/berth FAULTFS=build/tests/faultfs.so [TORTURE_SEED=] [RV_KILLS=40]
#   [NLINEAR=20] [NMAX=100000] [RV_MB=32] [RV_CALLS="write fsync rename"] tests/torture/restore-volume.sh
#
# Also kill -9 of a restore into a volume it creates (no --force): after it
# the volume is absent, empty or exactly the snapshot, and the restore reruns.
# Needs dockerd (a private one is started).  After each run: the volume holds
# exactly its old contents or exactly the snapshot (never a mix; a run that
# exited 0 holds the snapshot); next to the volume's directory nothing is
# left after the rerun (a killed run's staging directory is removed by the
# next restore); the working directory is untouched; no berth process is
# left; the container using the volume is running again (after `berth
# recover`, for a kill); `check` passes; the restore reruns with exit 0 and
# then the volume is the snapshot.  Ends with a summary table; a failure
# prints the seed, the command and what broke.  Exit 0 when none failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
: "${FAULTFS:=}"
KILLS=${RV_KILLS:-40}
NLINEAR=${NLINEAR:-20}
NMAX=${NMAX:-100000}
MB=${RV_MB:-32}
CALLS=${RV_CALLS:-write fsync rename}
echo "restore-volume.sh: TORTURE_SEED=$SEED RV_KILLS=$KILLS NLINEAR=$NLINEAR NMAX=$NMAX RV_MB=$MB RV_CALLS='$CALLS' (rerun with these to reproduce)"
command -v dockerd > /dev/null || { echo "restore-volume.sh: dockerd is not installed: skipped"; exit 0; }
tw_init restvol
tw_docker_up || { echo "restore-volume.sh: cannot start dockerd"; exit 1; }

OLD="$W/old" NEW="$W/new" CWD="$W/cwd"
mkdir -p "$OLD/sub" "$NEW/sub/deeper" "$CWD"
# old: files the snapshot also has (other bytes), files it lacks
for i in $(seq 1 $(( MB / 4 + 1 ))); do head -c $(( 2 * 1024 * 1024 )) /dev/urandom > "$OLD/data$i"; done
for i in $(seq 1 50); do echo "old $i" > "$OLD/sub/s$i"; done
echo "only in the old tree" > "$OLD/old-only"
# new: random and text files, many small ones, a sparse file, links, xattrs
for i in $(seq 1 $(( MB / 4 + 1 ))); do head -c $(( (RANDOM % 2048 + 1024) * 1024 )) /dev/urandom > "$NEW/data$i"; done
seq 1 200000 > "$NEW/sub/text"
for i in $(seq 1 200); do echo "new $i $RANDOM" > "$NEW/sub/deeper/s$i"; done
truncate -s 16M "$NEW/sparse" && printf 'x' | dd of="$NEW/sparse" bs=1 seek=3000000 conv=notrunc 2>/dev/null
ln -s data1 "$NEW/link"; ln "$NEW/sub/text" "$NEW/hard"
setfattr -n user.k -v v "$NEW/data1" 2>/dev/null || true
chmod 0600 "$NEW/data1"; touch -d '2001-02-03 04:05:06.5' "$NEW/sub/text"
echo "the caller's file" > "$CWD/mine"

b init > /dev/null || { echo "restore-volume.sh: init failed"; exit 1; }
SNAP=$(b backup --path "$NEW" --name new 2>> "$LOG" | tail -n 1)
[ -n "$SNAP" ] || { echo "restore-volume.sh: backup failed"; exit 1; }
docker volume create tv > /dev/null
MP=$(mountpoint_of tv)
VP=$(dirname "$MP")
cp -a "$OLD/." "$MP/"
docker run -d --name tvc -v tv:/data berth-test:latest idle > /dev/null
wait_state tvc running > /dev/null || { echo "restore-volume.sh: container does not start"; exit 1; }
CMD="restore $SNAP --to-volume tv --force"

# is_old / is_new: the volume holds exactly that tree
is_old() { python3 "$TREECMP" --no-root-times "$OLD" "$MP" >> "$LOG" 2>&1; }
is_new() { python3 "$TREECMP" --no-root-times "$NEW" "$MP" >> "$LOG" 2>&1; }
reset_old() {
        find "$MP" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
        cp -a "$OLD/." "$MP/"
}
cwd_state() { (cd "$CWD" && find . -printf '%p %s %m %T@\n' | sort && cat mine); }
CWD_STATE=$(cwd_state)

# after_run KIND: checks common to faults and kills; prints what is wrong
after_run() {
        local fail="" kind=$1 s
        [ "$kind" = kill ] && { b recover >> "$LOG" 2>&1 || fail="$fail; recover failed"; }
        local sp; sp=$(spinning_wait 5)
        [ -z "$sp" ] || fail="$fail; berth restore process(es) left running: $sp"
        if [ "$rc" -eq 0 ]; then
                is_new || fail="$fail; exit 0 but the volume is not the snapshot"
        elif ! is_old && ! is_new; then
                fail="$fail; the volume is neither the old contents nor the snapshot (a mix): $(ls -A "$MP" | head -n 5 | tr '\n' ' ')"
        fi
        [ "$(cwd_state)" = "$CWD_STATE" ] || fail="$fail; the working directory changed"
        if [ "$kind" = fault ]; then
                s=$(ls -A "$VP" | tr '\n' ' ')
                [ "$s" = "_data " ] || fail="$fail; next to the volume's directory: $s"
        fi
        s=$(cstate tvc)
        [ "$s" = running ] || fail="$fail; the container is $s, not running"
        b check >> "$LOG" 2>&1 || fail="$fail; check fails"
        # the rerun: clean, and the snapshot is in place
        if ! (cd "$CWD" && b $CMD >> "$LOG" 2>&1); then fail="$fail; rerun of '$CMD' failed"
        else
                is_new || fail="$fail; after the rerun the volume is not the snapshot"
        fi
        s=$(ls -A "$VP" | tr '\n' ' ')
        [ "$s" = "_data " ] || fail="$fail; after the rerun, next to the volume's directory: $s"
        s=$(cstate tvc)
        [ "$s" = running ] || fail="$fail; after the rerun the container is $s"
        printf '%s' "$fail"
}

declare -A N_RUNS N_FIRED N_FAILED N_ABSORBED N_BAD N_OLD N_NEW
ROWS=()
note() {        # note ROW FAILTEXT CONTEXT
        local row=$1 fail=$2
        N_RUNS[$row]=$(( ${N_RUNS[$row]:-0} + 1 ))
        [ "$fired" = 1 ] && N_FIRED[$row]=$(( ${N_FIRED[$row]:-0} + 1 ))
        if [ "$fired" = 1 ]; then
                if [ "$rc" -eq 0 ]; then N_ABSORBED[$row]=$(( ${N_ABSORBED[$row]:-0} + 1 ))
                else N_FAILED[$row]=$(( ${N_FAILED[$row]:-0} + 1 )); fi
        fi
        [ "$was" = old ] && N_OLD[$row]=$(( ${N_OLD[$row]:-0} + 1 ))
        [ "$was" = new ] && N_NEW[$row]=$(( ${N_NEW[$row]:-0} + 1 ))
        if [ -n "$fail" ]; then
                N_BAD[$row]=$(( ${N_BAD[$row]:-0} + 1 ))
                tw_fail "$row: berth $CMD $3: ${fail#; }"
        fi
}
# which the volume held right after the run (before the rerun)
which_tree() { if is_new; then echo new; elif is_old; then echo old; else echo mix; fi; }

# --- system-call faults, scoped to the volume's directory and its parent ---
if [ -n "$FAULTFS" ] && [ -f "$FAULTFS" ]; then
        for calls in $CALLS; do
                row="faults/$calls"; ROWS+=("$row")
                n=1
                while [ "$n" -le "$NMAX" ]; do
                        err=EIO; [ $(( RANDOM % 2 )) -eq 0 ] && err=ENOSPC
                        reset_old
                        : > "$W/faults"
                        errout=$(cd "$CWD" && FAULT_AT=$n FAULT_CALLS=$calls FAULT_ERRNO=$err FAULT_PATH=$VP \
                                FAULT_LOG="$W/faults" LD_PRELOAD=$FAULTFS \
                                ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
                                timeout -k 5 "$TIMEOUT" "$BERTH" $CMD 2>&1 > /dev/null)
                        rc=$?
                        fired=0; [ -s "$W/faults" ] && fired=1
                        was=$(which_tree)
                        printf '== %s at %s #%d (%s): rc %d, fired %d, volume %s\n%s\n' "$CMD" "$calls" "$n" "$err" \
                                "$rc" "$fired" "$was" "$errout" >> "$LOG"
                        fail=""
                        [ "$rc" -lt 124 ] || fail="; killed, crashed or hung (exit $rc)"
                        [ "$rc" -eq 0 ] || [[ "$errout" == *error* ]] || fail="$fail; exit $rc without an error message"
                        fail="$fail$(after_run fault)"
                        note "$row" "$fail" "with FAULT_CALLS=$calls FAULT_AT=$n FAULT_ERRNO=$err"
                        [ "$fired" = 1 ] || break
                        if [ "$n" -lt "$NLINEAR" ]; then n=$(( n + 1 )); else n=$(( n * 3 / 2 + RANDOM % 3 )); fi
                done
        done
else
        echo "restore-volume.sh: no FAULTFS shim (make tests): the system-call faults are left out"
fi

# --- kill -9 at random instants ---
row="kill -9"; ROWS+=("$row")
reset_old
t0=$(now_ms); (cd "$CWD" && b $CMD >> "$LOG" 2>&1); DUR=$(( $(now_ms) - t0 ))
for trial in $(seq 1 "$KILLS"); do
        reset_old
        delay=$(rand_upto $(( DUR * 12 / 10 + 1 )))
        echo "== kill trial $trial: $CMD, kill after ${delay} ms" >> "$LOG"
        (cd "$CWD" && exec "$BERTH" $CMD >> "$LOG" 2>&1) &
        pid=$!
        sleep_ms "$delay"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null; rc=$?
        fired=0; [ "$rc" -eq 137 ] && fired=1
        # a kill that lands is not an exit 0; one that came too late is judged as a run
        was=$(which_tree)
        fail=$(after_run kill)
        note "$row" "$fail" "killed after ${delay} ms (trial $trial)"
        reset_old
done

# --- kill -9 of a restore into a new volume (the restore creates it) ---
row="kill -9, new"; ROWS+=("$row")
NCMD="restore $SNAP --to-volume tvn"
docker volume rm -f tvn > /dev/null 2>&1
t0=$(now_ms); (cd "$CWD" && b $NCMD >> "$LOG" 2>&1); DUR=$(( $(now_ms) - t0 ))
for trial in $(seq 1 $(( (KILLS + 1) / 2 ))); do
        docker volume rm -f tvn > /dev/null 2>&1
        delay=$(rand_upto $(( DUR * 12 / 10 + 1 )))
        echo "== new-volume kill trial $trial: $NCMD, kill after ${delay} ms" >> "$LOG"
        (cd "$CWD" && exec "$BERTH" $NCMD >> "$LOG" 2>&1) &
        pid=$!
        sleep_ms "$delay"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null; rc=$?
        fired=0; [ "$rc" -eq 137 ] && fired=1
        fail=""
        s=$(spinning_wait 5); [ -z "$s" ] || fail="$fail; berth process(es) left running: $s"
        NMP=$(mountpoint_of tvn 2>/dev/null)
        was=old   # absent: as before
        if [ -n "$NMP" ]; then
                # a killed restore's staging directory is not the volume's contents (the next restore removes it)
                if [ -z "$(ls -A "$NMP" | grep -v '^\.berth-restore-')" ]; then was=old
                elif python3 "$TREECMP" --no-root-times "$NEW" "$NMP" >> "$LOG" 2>&1; then was=new
                else was=mix; fail="$fail; the new volume holds part of the snapshot: $(ls -A "$NMP" | head -n 5 | tr '\n' ' ')"; fi
        fi
        [ "$rc" -ne 0 ] || [ "$was" = new ] || fail="$fail; exit 0 but the volume is $was"
        [ "$(cwd_state)" = "$CWD_STATE" ] || fail="$fail; the working directory changed"
        b check >> "$LOG" 2>&1 || fail="$fail; check fails"
        if [ "$was" != new ]; then
                if ! (cd "$CWD" && b $NCMD >> "$LOG" 2>&1); then fail="$fail; rerun of '$NCMD' failed"
                else
                        NMP=$(mountpoint_of tvn 2>/dev/null)
                        python3 "$TREECMP" --no-root-times "$NEW" "$NMP" >> "$LOG" 2>&1 ||
                                fail="$fail; after the rerun the volume is not exactly the snapshot: $(ls -A "$NMP" | head -n 5 | tr '\n' ' ')"
                fi
        fi
        note "$row" "$fail" "(no --force; the volume was absent) killed after ${delay} ms (trial $trial)"
done

printf '\nrestore --to-volume --force under faults and kill -9, TORTURE_SEED=%s\n' "$SEED"
printf '%-14s %6s %7s %12s %9s %5s %5s %9s\n' what runs faulted failed-clean absorbed old new failures
for row in "${ROWS[@]}"; do
        printf '%-14s %6d %7d %12d %9d %5d %5d %9d\n' "$row" "${N_RUNS[$row]:-0}" "${N_FIRED[$row]:-0}" \
                "${N_FAILED[$row]:-0}" "${N_ABSORBED[$row]:-0}" "${N_OLD[$row]:-0}" "${N_NEW[$row]:-0}" "${N_BAD[$row]:-0}"
done
echo "(faulted: the fault fired / the kill landed mid-run; old/new: what the volume held right after;"
echo " kill -9, new: a restore into a volume it creates, without --force: old = absent or empty)"
if [ "$TW_FAILURES" -gt 0 ]; then echo "restore-volume.sh: $TW_FAILURES failure(s)"; exit 1; fi
exit 0
