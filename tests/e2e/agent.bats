#!/usr/bin/env bats
# berth agent against a real (private) Docker Engine: schedules from labels,
# Docker events, status and run-now over the control socket, SIGTERM and
# kill -9 in the middle of a job, failures retried, sd_notify.

load lib
load docker
load sshd

# lib's teardown, called after this file's own clean-up
eval "lib_$(declare -f teardown)"

setup_file() {
        docker_up
}

teardown_file() {
        docker_down
}

teardown() {
        stop_agent
        [ -z "${SSHD_PID:-}" ] || sshd_down
        # the next test's agent must not see this one's labelled volumes
        export DOCKER_HOST="unix://$DK/sock" # a test may have pointed it elsewhere
        docker ps -aq | xargs -r docker rm -f > /dev/null 2>&1 || true
        docker volume ls -q | xargs -r docker volume rm -f > /dev/null 2>&1 || true
        lib_teardown
}

# start_agent: berth agent in the background under timeout (its own process
# group, $TPID), logging to $T/agent.log; waits for its control socket.
# $AGENT is the agent's pid.
start_agent() {
        export BERTH_RUNTIME_DIR="$T/run" T
        timeout -k 5 "${AGENT_TIMEOUT:-120}" "$BERTH" agent 2>> "$T/agent.log" &
        TPID=$!
        BG_PIDS="${BG_PIDS:-} $TPID"
        for _ in $(seq 1 100); do
                [ -S "$T/run/agent.sock" ] && break
                sleep 0.1
        done
        [ -S "$T/run/agent.sock" ] || { cat "$T/agent.log" >&2; return 1; }
        AGENT=$(ps -o pid= --ppid "$TPID" | tr -d ' ')
        [ -n "$AGENT" ]
}

# stop_agent: SIGTERM to the agent, then waits for it; $AGENT_STATUS is its exit status.
stop_agent() {
        [ -n "${TPID:-}" ] || return 0
        kill -TERM "$AGENT" 2>/dev/null || true
        AGENT_STATUS=0
        wait "$TPID" || AGENT_STATUS=$?
        TPID=
}

# snapshot count of name $1
snaps() {
        if [ -e "$BERTH_REPO/config" ]; then berth --json snapshots "$1" | json_get '.__len__()'; else echo 0; fi
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds
wait_for() {
        local secs=$1
        shift
        for _ in $(seq 1 $((secs * 5))); do
                "$@" && return 0
                sleep 0.2
        done
        echo "timed out waiting for: $*" >&2
        cat "$T/agent.log" >&2 || true
        return 1
}

at_least() { [ "$(snaps "$1")" -ge "$2" ]; }

# status_py 'PYTHON': runs PYTHON with s = the agent's status and v = its volumes by name
status_py() {
        berth --json status > "$T/status.json" || return 1
        python3 - "$T/status.json" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
v = {x["name"]: x for x in s["volumes"]}
exec(sys.argv[2])
PY
}

# a volume of 400 MB that a container touches all the time: each backup
# re-reads it while the container is paused, so the window is wide
big_touched_volume() {
        local vol=$1 name=$2
        shift 2
        docker volume create "$vol" > /dev/null
        local mp
        mp=$(mountpoint_of "$vol")
        for i in $(seq 1 10); do head -c 40000000 /dev/urandom > "$mp/f$i"; done
        docker run -d --name "$name" -v "$vol:/data" "$@" berth-test:latest \
                sh -c 'trap "exit 0" TERM; while :; do touch /data/f*; sleep 0.1; done' > /dev/null
        wait_state "$name" running
}

@test "agent: a volume labelled 'every 2s' gets snapshots; status --json shows volumes, next runs, last results" {
        docker volume create --label berth.schedule="every 2s" vfast > /dev/null
        echo hello > "$(mountpoint_of vfast)/greeting"
        docker volume create --label berth.schedule="daily 02:30" vslow > /dev/null
        docker volume create vplain > /dev/null
        # a container's label covers its named volumes
        docker volume create vbycont > /dev/null
        docker run -d --name labelled -l berth.schedule=weekly -l berth.keep="daily=7" -v vbycont:/data \
                berth-test:latest idle > /dev/null
        start_agent
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 40 at_least vfast 3"
        [ "$(berth cat vfast greeting)" = hello ]
        status_py '
assert s["pid"] > 0 and s["repo"], s
assert set(v) == {"vfast", "vslow", "vbycont"}, v.keys()
assert v["vfast"]["schedule"] == "every 2s" and v["vfast"]["source"] == "volume label", v["vfast"]
assert v["vfast"]["last"]["status"] == "ok" and v["vfast"]["last"]["error"] is None, v["vfast"]
assert v["vfast"]["last"]["duration_ns"] > 0 and v["vfast"]["next_s"] > 0, v["vfast"]
assert v["vslow"]["schedule"] == "daily 02:30" and v["vslow"]["last"] is None, v["vslow"]
assert v["vbycont"]["source"] == "container labelled" and v["vbycont"]["keep"] == "daily=7", v["vbycont"]
assert v["vbycont"]["schedule"] == "weekly", v["vbycont"]
assert s["docker"]["reachable"] is True, s
'
        [ "$(snaps vslow)" -eq 0 ]
        [ "$(snaps vplain)" -eq 0 ]
        run berth status
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"VOLUME"*"SCHEDULE"*"NEXT"* ]]
        printf '%s\n' "$output" | grep -q '^vfast .*every 2s.* ok ('
        stop_agent
        [ "$AGENT_STATUS" -eq 0 ]
        grep -q "backed up 'vfast'" "$T/agent.log"
        [ ! -e "$T/run/agent.sock" ]
}

@test "agent: a labelled volume created (or a labelled container started) while it runs is picked up" {
        start_agent
        sleep 1
        docker volume create --label berth.schedule="every 2s" vlate > /dev/null
        echo late > "$(mountpoint_of vlate)/f"
        docker volume create vlatecont > /dev/null
        docker run -d --name latecomer -l berth.schedule="every 2s" -v vlatecont:/data berth-test:latest idle > /dev/null
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 40 at_least vlate 1 && wait_for 40 at_least vlatecont 1"
        [ "$(berth cat vlate f)" = late ]
}

@test "agent: run-now backs up a volume with a daily schedule; unknown names and a missing agent are errors" {
        BERTH_RUNTIME_DIR="$T/run" run berth status
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"no agent is running (no socket at $T/run/agent.sock); start it with systemctl start berth-agent"* ]]
        docker volume create --label berth.schedule=daily vday > /dev/null
        echo day > "$(mountpoint_of vday)/f"
        start_agent
        sleep 3
        [ "$(snaps vday)" -eq 0 ]
        run timeout -k 5 20 "$BERTH" run-now vday
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"queued vday"* ]]
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 40 at_least vday 1"
        [ "$(berth cat vday f)" = day ]
        grep -q "'vday': queued by run-now" "$T/agent.log"
        run timeout -k 5 20 "$BERTH" run-now nosuchvolume
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"does not cover a volume named 'nosuchvolume'"* ]]
        # the next daily run is still tomorrow's
        status_py '
import time
assert v["vday"]["last"]["status"] == "ok", v
assert v["vday"]["next_s"] > time.time() + 60, v
'
}

@test "agent: SIGTERM mid-job stops the backup, resumes the container, records nothing and exits 0" {
        big_touched_volume vterm termed -l berth.schedule="every 2s"
        start_agent
        # the backup runs: status shows it with its progress
        timeout -k 5 60 bash -c "$(declare -f status_py berth); export T; until status_py 'assert s[\"running\"] and s[\"running\"][\"job\"] == \"backup\" and s[\"running\"][\"bytes\"] > 0, s'; do sleep 0.1; done"
        child=$(berth --json status | json_get '["running"]["pid"]')
        stop_agent
        cat "$T/agent.log"
        [ "$AGENT_STATUS" -eq 0 ]
        ! kill -0 "$child" 2>/dev/null
        [ "$(state termed)" = running ]
        [ "$(snaps vterm)" -eq 0 ]
        grep -q "stopping" "$T/agent.log"
        grep -q "agent stopped" "$T/agent.log"
}

@test "agent: kill -9 of the agent and its job while a container is paused; restarting the agent resumes it" {
        big_touched_volume vk9 frozen -l berth.schedule="every 2s"
        start_agent
        wait_state frozen paused
        kill -9 -- "-$TPID"
        wait "$TPID" || true
        TPID=
        [ "$(state frozen)" = paused ]
        run timeout -k 5 20 "$BERTH" status
        [ "$status" -eq 1 ]
        [[ "$output" == *"no agent is running (nothing answers at $T/run/agent.sock)"* ]]
        start_agent
        # recover runs at start, before the first backup is due
        wait_state frozen running
        grep -q "agent started" "$T/agent.log"
        grep -q "recover: resumed container 'frozen'" "$T/agent.log"
}

@test "agent: an invalid label is a warning naming the volume and value; other volumes still back up" {
        docker volume create --label berth.schedule="sometimes" vbad > /dev/null
        docker volume create --label berth.schedule="every 2s" --label berth.keep="daily=lots" vbadkeep > /dev/null
        docker volume create --label berth.schedule="every 2s" vgood > /dev/null
        start_agent
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 40 at_least vgood 2"
        grep "warning: volume 'vbad': berth.schedule 'sometimes' is not valid" "$T/agent.log"
        grep "warning: volume 'vbadkeep': berth.keep 'daily=lots' is not valid" "$T/agent.log"
        # once, not at every look
        [ "$(grep -c "volume 'vbad':" "$T/agent.log")" -eq 1 ]
        status_py 'assert set(v) == {"vgood"}, v.keys()'
        [ "$(snaps vbad)" -eq 0 ]
        [ "$(snaps vbadkeep)" -eq 0 ]
}

@test "agent: a failing volume is recorded with its error and retried; the others still back up" {
        docker volume create vfailing > /dev/null
        docker run -d --name failing -l berth.schedule="every 2s" -l berth.pre='echo no dump >&2; exit 3' \
                -v vfailing:/data berth-test:latest idle > /dev/null
        docker volume create --label berth.schedule="every 2s" vfine > /dev/null
        wait_state failing running
        start_agent
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 40 at_least vfine 3"
        timeout -k 5 60 bash -c "$(declare -f status_py berth); export T; until status_py 'assert v[\"vfailing\"][\"failures\"] >= 2'; do sleep 0.2; done"
        status_py '
f = v["vfailing"]
assert f["last"]["status"] == "failed", f
assert "pre hook" in f["last"]["error"] and "exited with status 3" in f["last"]["error"], f
assert v["vfine"]["last"]["status"] == "ok", v["vfine"]
'
        [ "$(snaps vfailing)" -eq 0 ]
        [ "$(state failing)" = running ]
        grep -q "backup of 'vfailing' failed" "$T/agent.log"
        grep -q "'vfailing': retrying in" "$T/agent.log"
        run berth status
        echo "$output"
        printf '%s\n' "$output" | grep -q '^vfailing .*failed (.*pre hook.*failures in a row'
}

@test "agent: berth.keep is applied after each backup" {
        docker volume create --label berth.schedule="every 2s" --label berth.keep="last=2" vkeep > /dev/null
        start_agent
        timeout -k 5 90 bash -c "until [ \"\$(grep -c \"applied retention last=2 to 'vkeep'\" '$T/agent.log')\" -ge 3 ]; do sleep 0.2; done"
        stop_agent
        [ "$AGENT_STATUS" -eq 0 ]
        [ "$(snaps vkeep)" -le 3 ]
        [ "$(snaps vkeep)" -ge 2 ]
}

@test "agent: sd_notify READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 on NOTIFY_SOCKET" {
        python3 - "$T/notify.sock" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
with open(sys.argv[2], "a") as f:
    end = time.time() + 60
    while time.time() < end:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        f.write(m + "\n")
        f.flush()
        if "STOPPING=1" in m:
            break
PY
        NPID=$!
        BG_PIDS="${BG_PIDS:-} $NPID"
        for _ in $(seq 1 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
        docker volume create --label berth.schedule="daily 02:30" vnotify > /dev/null
        export NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=1000000
        start_agent
        unset NOTIFY_SOCKET WATCHDOG_USEC
        timeout -k 5 20 bash -c "until grep -q '^READY=1' '$T/notify.log'; do sleep 0.1; done"
        timeout -k 5 20 bash -c "until grep -q '^STATUS=idle; next: vnotify at 02:30$' '$T/notify.log'; do sleep 0.1; done"
        timeout -k 5 20 bash -c "until [ \"\$(grep -c '^WATCHDOG=1' '$T/notify.log')\" -ge 3 ]; do sleep 0.1; done"
        stop_agent
        [ "$AGENT_STATUS" -eq 0 ]
        timeout -k 5 20 bash -c "until grep -q '^STOPPING=1' '$T/notify.log'; do sleep 0.1; done"
}

@test "agent: a run missed while the host was off runs once at start; a recent one waits for its schedule" {
        docker volume create --label berth.schedule=daily vmissed > /dev/null
        docker volume create --label berth.schedule=daily vrecent > /dev/null
        berth backup vmissed vrecent > /dev/null
        # vmissed's snapshot is from three days ago (the host was off)
        sqlite3 "$BERTH_REPO/catalog.db" \
                "UPDATE snapshots SET started = started - 3*86400*1000000000, finished = finished - 3*86400*1000000000
                 WHERE name = (SELECT id FROM names WHERE name = 'vmissed')"
        start_agent
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 30 at_least vmissed 2"
        sleep 2
        # once, not once per missed day
        [ "$(snaps vmissed)" -eq 2 ]
        [ "$(snaps vrecent)" -eq 1 ]
        grep -q "'vmissed': last snapshot .* is older than its schedule (daily): backing up now" "$T/agent.log"
        # the last result of a backup made before the agent started comes from the job history
        status_py '
r = v["vrecent"]["last"]
assert r["status"] == "ok" and r["time_s"] > 0 and r["duration_ns"] > 0, r
'
}

@test "agent: SIGHUP reloads the configuration (volumes, schedule, keep) and looks again" {
        docker volume create vcfg > /dev/null
        docker volume create vother > /dev/null
        : > "$T/berth.conf"
        export BERTH_CONFIG="$T/berth.conf"
        start_agent
        sleep 1
        status_py 'assert not v, v'
        printf 'volumes = vcfg\nschedule = every 2s\nkeep = last=5\n' > "$T/berth.conf"
        kill -HUP "$AGENT"
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 30 at_least vcfg 1"
        status_py '
assert set(v) == {"vcfg"}, v.keys()
assert v["vcfg"]["source"] == "config" and v["vcfg"]["schedule"] == "every 2s" and v["vcfg"]["keep"] == "last=5", v
'
        grep -q "SIGHUP: reloading" "$T/agent.log"
        # a bad value is refused and the running configuration kept
        printf 'volumes = vcfg\nschedule = sometimes\n' > "$T/berth.conf"
        kill -HUP "$AGENT"
        timeout -k 5 20 bash -c "until grep -q \"schedule: 'sometimes' is not a schedule\" '$T/agent.log'; do sleep 0.1; done"
        printf 'volumes = vcfg\nschedule = every 2s\nkeep = daily=often\n' > "$T/berth.conf"
        kill -HUP "$AGENT"
        timeout -k 5 20 bash -c "until grep -q \"keep = daily=often: \" '$T/agent.log'; do sleep 0.1; done"
        grep -q "keeping the running configuration" "$T/agent.log"
        # other commands ignore the agent's keys: status works with them
        status_py 'assert v["vcfg"]["keep"] == "last=5", v'
        status_py 'assert set(v) == {"vcfg"}, v.keys()'
        [ "$(snaps vother)" -eq 0 ]
        # at start, a bad value is fatal
        stop_agent
        [ "$AGENT_STATUS" -eq 0 ]
        printf 'prune_schedule = fortnightly\n' > "$T/berth.conf"
        run timeout -k 5 20 "$BERTH" agent
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"prune_schedule: 'fortnightly' is not a schedule"* ]]
}

@test "agent: Docker unreachable is logged and retried; status still answers" {
        export DOCKER_HOST="unix://$T/no-docker.sock"
        start_agent
        run timeout -k 5 20 "$BERTH" --json status
        echo "$output"
        [ "$status" -eq 0 ]
        printf '%s' "$output" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["docker"]["reachable"] is False and "no-docker.sock" in s["docker"]["error"], s
assert s["volumes"] == [], s
'
        run timeout -k 5 20 "$BERTH" status
        [[ "$output" == *"Docker is not reachable"* ]]
        grep -q "warning: Docker is not reachable" "$T/agent.log"
        # Docker comes up: the agent finds it and its labelled volumes
        DOCKER_HOST="unix://$DK/sock" docker volume create --label berth.schedule="every 2s" vlater > /dev/null
        ln -s "$DK/sock" "$T/no-docker.sock"
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 40 at_least vlater 1"
        grep -q "Docker is reachable again" "$T/agent.log"
        stop_agent
        [ "$AGENT_STATUS" -eq 0 ]
}

@test "agent: the control socket is 0600 in a 0755 directory and answers root and the agent's user only" {
        start_agent
        [ "$(stat -c %a "$T/run")" = 755 ]
        [ "$(stat -c %a "$T/run/agent.sock")" = 600 ]
        chmod 0755 "$T"
        nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
        run timeout -k 5 20 "${nobody[@]}" "$BERTH" status
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"cannot talk to the agent at $T/run/agent.sock"* ]]
        # past the file mode, the agent itself checks the peer's uid
        chmod 0666 "$T/run/agent.sock"
        run timeout -k 5 20 "${nobody[@]}" "$BERTH" run-now anything
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"permission denied: the agent answers root and its own user"* ]]
}

@test "agent: kill -9 of the agent alone: its job gets SIGTERM and resumes the container" {
        big_touched_volume vorphan orphaned -l berth.schedule="every 2s"
        start_agent
        wait_state orphaned paused
        child=$(ps -o pid= --ppid "$AGENT" | tr -d ' ')
        [ -n "$child" ]
        kill -9 "$AGENT"
        wait_state orphaned running
        timeout -k 5 30 bash -c "while kill -0 $child 2>/dev/null && [ \"\$(ps -o stat= -p $child)\" != Z ]; do sleep 0.1; done"
        wait "$TPID" || true
        TPID=
}

@test "agent: berth metrics --output after each job when metrics_file is set" {
        printf 'metrics_file = %s\n' "$T/berth.prom" > "$T/berth.conf"
        export BERTH_CONFIG="$T/berth.conf"
        docker volume create --label berth.schedule="every 2s" vmetrics > /dev/null
        start_agent
        timeout -k 5 60 bash -c "until grep -q 'vmetrics' '$T/berth.prom' 2>/dev/null; do sleep 0.2; done"
        grep -q '^berth_' "$T/berth.prom"
}

@test "agent: berth prune runs on prune_schedule and its result shows in status" {
        printf 'prune_schedule = every 3s\n' > "$T/berth.conf"
        export BERTH_CONFIG="$T/berth.conf"
        docker volume create --label berth.schedule="every 2s" vprune > /dev/null
        start_agent
        timeout -k 5 60 bash -c "$(declare -f status_py berth); export T; until status_py 'assert s[\"prune\"][\"last\"] and s[\"prune\"][\"last\"][\"status\"] == \"ok\", s[\"prune\"]'; do sleep 0.2; done"
        grep -q "pruning the repository" "$T/agent.log"
        status_py 'assert s["prune"]["schedule"] == "every 3s", s["prune"]'
        [ "$(snaps vprune)" -ge 1 ]
}

@test "agent: volumes = all covers every named volume with the configured schedule; a label still wins" {
        printf 'volumes = all\nschedule = every 2s\nkeep = last=9\n' > "$T/berth.conf"
        export BERTH_CONFIG="$T/berth.conf"
        docker volume create vall1 > /dev/null
        docker volume create --label berth.schedule=monthly --label berth.keep="monthly=3" vall2 > /dev/null
        # an anonymous volume is left to its container's labels
        docker run -d --name anon -v /data berth-test:latest idle > /dev/null
        start_agent
        timeout -k 5 60 bash -c "$(declare -f wait_for at_least snaps json_get berth); wait_for 40 at_least vall1 2"
        status_py '
assert set(v) == {"vall1", "vall2"}, v.keys()
assert v["vall1"]["source"] == "config" and v["vall1"]["schedule"] == "every 2s" and v["vall1"]["keep"] == "last=9", v
assert v["vall2"]["source"] == "volume label" and v["vall2"]["schedule"] == "monthly", v
assert v["vall2"]["keep"] == "monthly=3", v
'
        [ "$(snaps vall2)" -eq 0 ]
}

@test "agent: an encrypted repository's key is opened once at start; jobs run without the password" {
        echo agent-secret > "$T/pw"
        chmod 600 "$T/pw"
        export BERTH_PASSWORD_FILE="$T/pw" BERTH_CACHE_DIR="$T/cache"
        berth init --encrypt
        docker volume create --label berth.schedule=daily --label berth.keep=last=5 venc > /dev/null
        echo secret-day > "$(mountpoint_of venc)/f"
        start_agent
        timeout -k 5 30 bash -c "$(declare -f wait_for); wait_for 20 grep -q 'opened the key of encrypted repository' '$T/agent.log'"
        # from here on no job can read the password
        mv "$T/pw" "$T/pw.away"
        run timeout -k 5 20 "$BERTH" run-now venc
        echo "$output"
        [ "$status" -eq 0 ]
        timeout -k 5 60 bash -c "$(declare -f wait_for status_py); T='$T'; BERTH='$BERTH'; $(declare -f berth);
                wait_for 40 status_py 'assert v[\"venc\"][\"last\"] and v[\"venc\"][\"last\"][\"status\"] == \"ok\", v'"
        cat "$T/agent.log"
        # no scrypt in the job: its 64 MiB would show (not under ASan, whose
        # shadow memory is larger than that)
        limit=$((48 << 20))
        ! ldd "$BERTH" | grep -q libasan || limit=$((1 << 40))
        status_py '
assert s["key_held"] is True, s
l = v["venc"]["last"]
assert l["cpu_ns"] > 0 and l["peak_rss_bytes"] > 1 << 20, l
assert l["peak_rss_bytes"] < '"$limit"', l
'
        # the backup and its retention (forget) ran as jobs, each without the password
        grep -q "backed up 'venc'" "$T/agent.log"
        grep -q "applied retention last=5 to 'venc'" "$T/agent.log"
        run grep -v "opened the key" "$T/agent.log"
        [[ "$output" != *password* ]]
        stop_agent
        [ "$AGENT_STATUS" -eq 0 ]
        mv "$T/pw.away" "$T/pw"
        [ "$(berth cat venc f)" = secret-day ]
        [ "$(snaps venc)" -eq 1 ]
}

@test "berth ignores a BERTH_KEY_FD that is not the agent's pipe, and never waits on it" {
        echo right > "$T/pw"
        BERTH_PASSWORD_FILE="$T/pw" BERTH_CACHE_DIR="$T/cache" berth init --encrypt
        # a terminal-like fd (stdin), a pipe of garbage, a pipe left open
        # with nothing in it: each one ignored, the password still asked for
        for how in stdin garbage empty; do
                case $how in
                stdin) run timeout -k 5 20 env BERTH_KEY_FD=0 BERTH_CACHE_DIR="$T/cache" "$BERTH" snapshots < /dev/null ;;
                garbage) run timeout -k 5 20 bash -c 'exec 3< <(head -c 72 /dev/urandom); BERTH_KEY_FD=3 BERTH_CACHE_DIR="$1" exec "$2" snapshots < /dev/null' _ "$T/cache" "$BERTH" ;;
                empty) run timeout -k 5 20 bash -c 'exec 3< <(sleep 3); BERTH_KEY_FD=3 BERTH_CACHE_DIR="$1" exec "$2" snapshots < /dev/null' _ "$T/cache" "$BERTH" ;;
                esac
                echo "$how: $status $output"
                [ "$status" -eq 1 ]
                [[ "$output" == *"is encrypted and no password was given"* ]]
        done
}

@test "agent: a wrong password at start is a warning; each job then fails saying so" {
        echo right > "$T/pw"
        export BERTH_CACHE_DIR="$T/cache"
        BERTH_PASSWORD_FILE="$T/pw" berth init --encrypt
        echo wrong > "$T/wrong"
        export BERTH_PASSWORD_FILE="$T/wrong"
        docker volume create --label berth.schedule=daily vwrong > /dev/null
        start_agent
        timeout -k 5 30 bash -c "$(declare -f wait_for); wait_for 20 grep -q 'cannot open the repository now' '$T/agent.log'"
        grep -q "warning: cannot open the repository now (wrong password for repository" "$T/agent.log"
        status_py 'assert s["key_held"] is False, s'
        run timeout -k 5 20 "$BERTH" run-now vwrong
        [ "$status" -eq 0 ]
        timeout -k 5 60 bash -c "$(declare -f wait_for status_py); T='$T'; BERTH='$BERTH'; $(declare -f berth);
                wait_for 40 status_py 'assert v[\"vwrong\"][\"last\"] and v[\"vwrong\"][\"last\"][\"status\"] == \"failed\", v'"
        status_py 'assert "wrong password" in v["vwrong"]["last"]["error"], v["vwrong"]'
}

@test "agent: the key of an encrypted repository over SSH is opened once; the serve end holds no password" {
        command -v /usr/sbin/sshd > /dev/null || skip "openssh-server is not installed"
        export HOME=$T/home
        mkdir -p "$HOME"
        unset SSH_AUTH_SOCK SSH_AGENT_PID
        echo far-secret > "$T/pw"
        export BERTH_PASSWORD_FILE="$T/pw" BERTH_CACHE_DIR="$T/cache" BERTH_SCRYPT_N_LOG2=14
        sshd_up "$T/sshd"
        sshd_known_line ed25519 > "$T/kh"
        BERTH_REPO="$T/far" berth init --encrypt
        export BERTH_REPO=ssh://root@127.0.0.1:$SSHD_PORT$T/far BERTH_SSH_IDENTITY=$SSHD_USER_KEY
        export BERTH_SSH_KNOWN_HOSTS=$T/kh BERTH_REMOTE_BERTH=$BERTH
        docker volume create --label berth.schedule=daily vfar > /dev/null
        echo far-day > "$(mountpoint_of vfar)/f"
        start_agent
        timeout -k 5 30 bash -c "$(declare -f wait_for); wait_for 20 grep -q 'opened the key of encrypted repository' '$T/agent.log'"
        mv "$T/pw" "$T/pw.away"
        run timeout -k 5 20 "$BERTH" run-now vfar
        [ "$status" -eq 0 ]
        timeout -k 5 60 bash -c "$(declare -f wait_for status_py); T='$T'; BERTH='$BERTH'; $(declare -f berth);
                wait_for 40 status_py 'assert v[\"vfar\"][\"last\"] and v[\"vfar\"][\"last\"][\"status\"] == \"ok\", v'"
        stop_agent
        mv "$T/pw.away" "$T/pw"
        [ "$(timeout -k 5 60 "$BERTH" cat vfar f)" = far-day ]
        [ ! -e "$T/far/catalog.db" ]
}
