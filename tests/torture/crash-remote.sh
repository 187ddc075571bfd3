#!/bin/bash
# crash-remote.sh — kill -9 at seeded random instants of `berth migrate`
# (the local client, or separately the far side's `berth serve` / restore
# process) and of `berth agent` during a run-now backup job that quiesces a
# container.
#
#   BERTH=build/berth [TORTURE_SEED=] [MIGRATE_TRIALS=40] [AGENT_TRIALS=20] [CR_MB=24]
#   tests/torture/crash-remote.sh
#
# Needs dockerd and openssh-server: two private dockerds (the second stands
# for the far host; its berth is a wrapper pointing DOCKER_HOST at it) and a
# real sshd on loopback.  After each kill: `berth recover` on both ends;
# `check` passes on both repositories; snapshots either repository lists
# restore identical to the tree they were taken from (each trial: the
# newest and one at random of each; at the end: all); the far volume holds
# exactly the previous migration or exactly this one (never a mix); no
# container on either host is left paused or stopped; no berth process is
# left; the interrupted operation reruns cleanly (migrate: exit 0 and the
# far volume is the source; agent: a restarted agent's run-now job adds a
# snapshot).  Ends with a summary table; a failure prints the seed, the
# command and what broke.  Exit 0 when none failed.  TW_TRACE=1 traces.
set -uo pipefail; [ -n "${TW_TRACE:-}" ] && { PS4='+ $EPOCHREALTIME '; set -x; }
. "$(dirname "$0")/lib.sh"
MTRIALS=${MIGRATE_TRIALS:-40}
ATRIALS=${AGENT_TRIALS:-20}
MB=${CR_MB:-24}
echo "crash-remote.sh: TORTURE_SEED=$SEED MIGRATE_TRIALS=$MTRIALS AGENT_TRIALS=$ATRIALS CR_MB=$MB (rerun with these to reproduce)"
if ! command -v dockerd > /dev/null || [ ! -x /usr/sbin/sshd ]; then
        echo "crash-remote.sh: needs dockerd and openssh-server: skipped"; exit 0
fi
tw_init remote
tw_docker_up || { echo "crash-remote.sh: cannot start dockerd"; exit 1; }
DH2=$DOCKER_HOST
tw_docker_up || { echo "crash-remote.sh: cannot start the second dockerd"; exit 1; }

sshd_up "$W/sshd" || { echo "crash-remote.sh: cannot start sshd"; exit 1; }
KH="$W/known_hosts"; sshd_known_line ed25519 > "$KH"
FAR_REPO="$W/far-repo" REF="$W/ref" FARPIDS="$W/far-pids"
mkdir -p "$REF"
# the far side's berth: records its pid (for the far kills), then is berth
printf '#!/bin/sh\necho $$ >> %s\nexport DOCKER_HOST=%s BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=warning TW_TAG=%s\nexec %s "$@"\n' \
        "$FARPIDS" "$DH2" "$W" "$BERTH" > "$W/far-berth"
chmod 755 "$W/far-berth"
far() { DOCKER_HOST=$DH2 timeout -k 5 60 docker "$@"; }
fb() { timeout -k 5 "$TIMEOUT" "$W/far-berth" -r "$FAR_REPO" "$@"; }
b init > /dev/null || { echo "crash-remote.sh: init failed"; exit 1; }

# the source volume: bulk files (fixed) and var/ (changed every trial)
docker volume create tvm > /dev/null
SRC=$(mountpoint_of tvm)
mkdir -p "$SRC/bulk" "$SRC/var"
for i in $(seq 1 $(( MB / 4 + 1 ))); do
        head -c $(( 2 * 1024 * 1024 )) /dev/urandom > "$SRC/bulk/rand$i"
        seq 1 $(( 300000 + i )) | head -c $(( 2 * 1024 * 1024 )) > "$SRC/bulk/text$i"
done
for i in $(seq 1 100); do echo "small $i" > "$SRC/bulk/s$i"; done
ln -s rand1 "$SRC/bulk/link"; ln "$SRC/bulk/text1" "$SRC/bulk/hard"
setfattr -n user.k -v v "$SRC/bulk/rand1" 2>/dev/null || true
docker run -d --name src -l berth.quiesce=pause -v tvm:/data berth-test:latest idle > /dev/null
wait_state src running > /dev/null || exit 1
mutate() {
        head -c $(( (RANDOM % 1024 + 1) * 1024 )) /dev/urandom > "$SRC/var/new$1"
        printf 'trial %s\n' "$1" > "$SRC/var/counter"
        local old; old=$(ls "$SRC/var" | grep '^new' | head -n 1)
        [ "$(ls "$SRC/var" | wc -l)" -gt 5 ] && rm -f "$SRC/var/$old"
        rm -rf "$W/cur"; cp -a "$SRC" "$W/cur"      # what a snapshot taken now holds
}
# record_new [REPO]: a listed snapshot without a reference was taken from $W/cur
record_new() { local id; for id in $(listed "${1:-}"); do [ -d "$REF/$id" ] || cp -a "$W/cur" "$REF/$id"; done; }

# verify_all REPO [some]: every listed snapshot (some: the newest and one at
# random) restores identical; prints what differs
verify_all() {
        local id out="$W/out" repo=$1 msg="" ids n
        ids=$(listed "$repo")
        if [ "${2:-}" = some ] && [ -n "$ids" ]; then
                n=$(printf '%s\n' "$ids" | grep -c .)
                ids=$(printf '%s\n%s\n' "$(printf '%s\n' "$ids" | tail -n 1)" \
                        "$(printf '%s\n' "$ids" | sed -n "$(( RANDOM % n + 1 ))p")" | sort -u)
        fi
        for id in $ids; do
                rm -rf "$out"
                if [ ! -d "$REF/$id" ]; then msg="$msg; snapshot $id in $repo appeared from nowhere"; continue; fi
                if ! b -r "$repo" restore "$id" --target "$out" >> "$LOG" 2>&1; then msg="$msg; restore $id from $repo failed"
                elif ! python3 "$TREECMP" --no-root-times "$REF/$id" "$out" >> "$LOG" 2>&1; then
                        msg="$msg; $id from $repo differs from its source"
                fi
        done
        rm -rf "$out"
        printf '%s' "$msg"
}

MIG=(migrate tvm "$SSHD_DEST" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$W/far-berth"
     --remote-repo "$FAR_REPO" --force)
FARMP=""
far_is() { python3 "$TREECMP" --no-root-times "$1" "$FARMP" >> "$LOG" 2>&1; }

declare -A N_TRIALS N_LANDED N_FAIL N_OLD N_NEW
ROWS=("migrate/client" "migrate/far" "agent" "agent+job")
for r in "${ROWS[@]}"; do N_TRIALS[$r]=0; N_LANDED[$r]=0; N_FAIL[$r]=0; N_OLD[$r]=0; N_NEW[$r]=0; done

# --- migrate ---
mutate 0
t0=$(now_ms)
b "${MIG[@]}" >> "$LOG" 2>&1 || { echo "crash-remote.sh: the first migrate failed (log: $LOG)"; TW_KEEP=1; exit 1; }
DUR=$(( $(now_ms) - t0 )); NFAR=$(grep -c . "$FARPIDS")
DUR=$(( DUR * 2 / 3 ))       # it included creating the far repository
record_new; record_new "$FAR_REPO"
FARMP=$(far volume inspect -f '{{.Mountpoint}}' tvm)
# a container on the far host uses the migrated volume: restores stop and restart it
far run -d --name dst -v tvm:/data berth-test:latest idle > /dev/null
PREV="$W/prev"; rm -rf "$PREV"; cp -a "$W/cur" "$PREV"      # what the far volume holds
for trial in $(seq 1 "$MTRIALS"); do
        row="migrate/client"; [ $(( RANDOM % 2 )) -eq 0 ] && row="migrate/far"
        mutate "m$trial"
        : > "$FARPIDS"
        echo "== migrate trial $trial ($row)" >> "$LOG"
        "$BERTH" "${MIG[@]}" >> "$LOG" 2>&1 &
        pid=$!
        landed=0
        if [ "$row" = migrate/client ]; then
                delay=$(rand_upto $(( DUR * 12 / 10 + 1 )))
                what="the client after ${delay} ms"
                sleep_ms "$delay"
                kill -9 "$pid" 2>/dev/null && landed=1
        else
                # the Kth far-side process (serve, restore...), a random time after it started
                k=$(( RANDOM % NFAR + 1 )); delay=$(rand_upto 400)
                what="far-side process #$k, ${delay} ms after it started"
                for _ in $(seq 1 1000); do
                        [ "$(grep -c . "$FARPIDS")" -ge "$k" ] && break
                        kill -0 "$pid" 2>/dev/null || break
                        sleep 0.01
                done
                sleep_ms "$delay"
                p=$(sed -n "${k}p" "$FARPIDS")
                [ -n "$p" ] && kill -9 "$p" 2>/dev/null && landed=1
        fi
        echo "   killed $what (landed: $landed)" >> "$LOG"
        wait "$pid" 2>/dev/null
        rc=$?
        N_TRIALS[$row]=$(( N_TRIALS[$row] + 1 )); N_LANDED[$row]=$(( N_LANDED[$row] + landed ))
        fail=""
        s=$(spinning_wait 15); [ -z "$s" ] || fail="$fail; berth process(es) left running: $s"
        b recover >> "$LOG" 2>&1 || fail="$fail; recover failed here"
        fb recover >> "$LOG" 2>&1 || fail="$fail; recover failed on the far side"
        [ "$(cstate src)" = running ] || fail="$fail; the source container is $(cstate src)"
        s=$(DOCKER_HOST=$DH2 cstate dst); [ "$s" = running ] || fail="$fail; the far container is $s"
        b check >> "$LOG" 2>&1 || fail="$fail; check fails here"
        [ -d "$FAR_REPO" ] && { fb check >> "$LOG" 2>&1 || fail="$fail; check fails on the far repository"; }
        if far_is "$W/cur"; then N_NEW[$row]=$(( N_NEW[$row] + 1 ))
        elif far_is "$PREV"; then N_OLD[$row]=$(( N_OLD[$row] + 1 ))
                [ "$rc" -ne 0 ] || fail="$fail; migrate exited 0 but the far volume is the old one"
        else fail="$fail; the far volume is neither the previous migration nor this one (a mix)"; fi
        record_new; record_new "$FAR_REPO"
        fail="$fail$(verify_all "$BERTH_REPO" some)$(verify_all "$FAR_REPO" some)"
        # the rerun (its duration and far-side process count set the next kill's range)
        : > "$FARPIDS"; t0=$(now_ms)
        if ! b "${MIG[@]}" >> "$LOG" 2>&1; then fail="$fail; rerun of migrate failed"
        else
                DUR=$(( $(now_ms) - t0 )); NFAR=$(grep -c . "$FARPIDS")
                far_is "$W/cur" || fail="$fail; after the rerun the far volume is not the source"
        fi
        record_new; record_new "$FAR_REPO"
        cp -a "$W/cur" "$PREV.n" && rm -rf "$PREV" && mv "$PREV.n" "$PREV"
        [ "$(cstate src)" = running ] || fail="$fail; after the rerun the source container is $(cstate src)"
        s=$(DOCKER_HOST=$DH2 cstate dst); [ "$s" = running ] || fail="$fail; after the rerun the far container is $s"
        if [ -n "$fail" ]; then
                N_FAIL[$row]=$(( N_FAIL[$row] + 1 ))
                tw_fail "$row trial $trial: berth ${MIG[*]} (kill -9 of $what): ${fail#; }"
        fi
        # keep both repositories small
        if [ "$(listed | wc -l)" -gt 6 ]; then
                b forget --keep-last 3 > /dev/null 2>&1; b prune > /dev/null 2>&1
                fb forget --keep-last 3 > /dev/null 2>&1; fb prune > /dev/null 2>&1
        fi
done

# --- agent ---
export BERTH_RUNTIME_DIR="$W/run"
docker rm -f src > /dev/null
docker volume create --label berth.schedule=daily tva > /dev/null
SRC=$(mountpoint_of tva)
cp -a "$(mountpoint_of tvm)/bulk" "$SRC/"; mkdir -p "$SRC/var" "$SRC/more"
# more data: the job (and its quiesce window) lasts long enough to be hit
for i in $(seq 1 $(( MB / 2 + 1 ))); do head -c $(( 4 * 1024 * 1024 )) /dev/urandom > "$SRC/more/r$i"; done
docker run -d --name ctr -l berth.quiesce=pause -v tva:/data -v tvm:/other berth-test:latest idle > /dev/null
wait_state ctr running > /dev/null || exit 1
start_agent() {
        rm -f "$W/run/agent.sock"
        "$BERTH" agent >> "$W/agent.log" 2>&1 &
        AGENT=$!
        for _ in $(seq 1 100); do [ -S "$W/run/agent.sock" ] && return 0; sleep 0.1; done
        return 1
}
stop_agent() { kill -TERM "$AGENT" 2>/dev/null; wait "$AGENT" 2>/dev/null; }
nsnaps() { listed | wc -l; }
# run_job: run-now, then waits (up to TIMEOUT) for a new snapshot; 0 when one came
run_job() {
        local n0; n0=$(nsnaps)
        b run-now tva >> "$LOG" 2>&1 || return 1
        for _ in $(seq 1 $(( TIMEOUT * 5 ))); do [ "$(nsnaps)" -gt "$n0" ] && return 0; sleep 0.2; done
        return 1
}
mutate a0
start_agent || { echo "crash-remote.sh: the agent does not start (log: $W/agent.log)"; TW_KEEP=1; exit 1; }
# job_pid: the agent's backup job (not the recover it runs at start)
job_pid() {
        local p
        for p in $(ps -o pid= --ppid "$AGENT"); do
                tr '\0' '\n' 2>/dev/null < "/proc/$p/cmdline" | grep -qx backup && { echo "$p"; return; }
        done
}
# wait_job: waits (5 s at most) for the agent's job process; sets job
wait_job() { for _ in $(seq 1 500); do job=$(job_pid); [ -n "$job" ] && return 0; sleep 0.01; done; return 1; }
t0=$(now_ms)
b run-now tva >> "$LOG" 2>&1
wait_job || { echo "crash-remote.sh: the agent started no job (log: $W/agent.log)"; TW_KEEP=1; exit 1; }
while kill -0 "$job" 2>/dev/null && [ "$(job_pid)" = "$job" ]; do sleep 0.01; done
ADUR=$(( $(now_ms) - t0 ))
sleep 0.3
record_new
stop_agent
for trial in $(seq 1 "$ATRIALS"); do
        row=agent; [ $(( RANDOM % 2 )) -eq 0 ] && row=agent+job
        mutate "a$trial"
        start_agent || { tw_fail "agent trial $trial: the agent does not start"; continue; }
        delay=$(rand_upto $(( ADUR * 12 / 10 + 1 )))
        echo "== agent trial $trial ($row): run-now, kill after ${delay} ms" >> "$LOG"
        t0=$(now_ms)
        b run-now tva >> "$LOG" 2>&1
        landed=0; job=""
        wait_job
        d=$(( delay - ($(now_ms) - t0) )); [ "$d" -gt 0 ] && sleep_ms "$d"
        [ -n "$job" ] && kill -0 "$job" 2>/dev/null && landed=1
        kill -9 "$AGENT" 2>/dev/null
        [ "$row" = agent+job ] && [ -n "$job" ] && kill -9 $job 2>/dev/null
        wait "$AGENT" 2>/dev/null
        N_TRIALS[$row]=$(( N_TRIALS[$row] + 1 )); N_LANDED[$row]=$(( N_LANDED[$row] + landed ))
        fail=""
        s=$(spinning_wait 30); [ -z "$s" ] || fail="$fail; berth process(es) left running: $s"
        b recover >> "$LOG" 2>&1 || fail="$fail; recover failed"
        s=$(cstate ctr); [ "$s" = running ] || fail="$fail; the container is $s after recover"
        b check >> "$LOG" 2>&1 || fail="$fail; check fails"
        record_new
        fail="$fail$(verify_all "$BERTH_REPO" some)"
        # the rerun: a new agent, its job adds a snapshot
        if ! start_agent; then fail="$fail; the agent does not start again"
        else
                run_job || fail="$fail; a run-now job after the restart added no snapshot"
                record_new
                stop_agent
        fi
        s=$(cstate ctr); [ "$s" = running ] || fail="$fail; after the rerun the container is $s"
        b check >> "$LOG" 2>&1 || fail="$fail; check fails after the rerun"
        if [ -n "$fail" ]; then
                N_FAIL[$row]=$(( N_FAIL[$row] + 1 ))
                tw_fail "$row trial $trial: kill -9 of berth agent$([ "$row" = agent+job ] && echo " and its job") ${delay} ms after run-now: ${fail#; }"
        fi
        if [ "$(nsnaps)" -gt 6 ]; then b forget --keep-last 3 > /dev/null 2>&1; b prune > /dev/null 2>&1; fi
done
msg=$(verify_all "$BERTH_REPO")$(verify_all "$FAR_REPO")
[ -z "$msg" ] || tw_fail "final: ${msg#; }"

printf '\ncrash injection (kill -9) of migrate and the agent, TORTURE_SEED=%s\n' "$SEED"
printf '%-16s %7s %9s %9s %9s %9s\n' killed trials mid-run far-old far-new failures
for r in "${ROWS[@]}"; do
        printf '%-16s %7d %9d %9s %9s %9d\n' "$r" "${N_TRIALS[$r]}" "${N_LANDED[$r]}" \
                "$([ "${r%%/*}" = migrate ] && echo "${N_OLD[$r]}" || echo -)" \
                "$([ "${r%%/*}" = migrate ] && echo "${N_NEW[$r]}" || echo -)" "${N_FAIL[$r]}"
done
echo "(migrate/client: the local berth killed; migrate/far: the far side's serve or restore; agent+job: the job too;"
echo " mid-run: the process was alive when killed; far-old/far-new: what the far volume held right after)"
if [ "$TW_FAILURES" -gt 0 ]; then echo "crash-remote.sh: $TW_FAILURES failure(s)"; exit 1; fi
exit 0
