#!/usr/bin/env bats
# Docker volumes against a real (private) Docker Engine: quiescing, hooks,
# crash recovery, --all, --container, restore into volumes.

load lib
load docker

setup_file() {
        docker_up
}

teardown_file() {
        docker_down
}

# A container appending numbered lines to /data/log the whole time.
start_writer() {
        local name=$1 vol=$2
        shift 2
        docker run -d --name "$name" -v "$vol:/data" "$@" berth-test:latest \
                sh -c 'trap "exit 0" TERM; i=0; while true; do i=$((i+1)); echo "line $i" >> /data/log; done' > /dev/null
        wait_state "$name" running
        # let it write a while
        sleep 0.5
}

# Every line of a restored log is "line N" with N = 1, 2, 3... in order.
check_log() {
        awk '{ if ($0 != "line " NR) { print "line " NR " is: " $0; exit 1 } }' "$1"
}

@test "volumes lists volumes with their driver, containers and backups" {
        docker volume create vlist > /dev/null
        docker run -d --name lister -v vlist:/data berth-test:latest idle > /dev/null
        docker run -d --name anon -v /var/lib/anon berth-test:latest idle > /dev/null
        run berth volumes
        echo "$output"
        [ "$status" -eq 0 ]
        # the row of vlist: driver, no backup yet, its container (rows come
        # in Docker's order, so look at that row alone)
        row=$(printf '%s\n' "$output" | grep '^vlist ')
        [[ "$row" == *"local"*"never"*"lister(running)"* ]]
        [[ "$output" == *"anon:/var/lib/anon"* ]]
        berth backup vlist > /dev/null
        run berth --json volumes
        python3 - "$output" <<'PY'
import json, sys
vols = {v["name"]: v for v in json.loads(sys.argv[1])}
assert vols["vlist"]["last_backup_id"], vols["vlist"]
assert vols["vlist"]["containers"][0]["name"] == "lister"
assert vols["anon:/var/lib/anon"]["anonymous"] is True
PY
        docker rm -f lister anon > /dev/null
}

@test "pause: a container writing all the time is backed up consistently and keeps running" {
        docker volume create vpause > /dev/null
        start_writer wpause vpause
        run berth backup vpause
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"quiesce window"*"paused wpause"*"two-phase"* ]]
        [[ "$output" != *"inconsistent"* ]]
        [ "$(state wpause)" = running ]
        id=$(last_line)
        berth restore "$id" --target "$T/out"
        run check_log "$T/out/log"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(wc -l < "$T/out/log")" -gt 100 ]
        # the window is recorded with the snapshot, with the volume's metadata
        meta=$(berth --json snapshots vpause | json_get '[0]["meta"]')
        python3 - "$meta" <<'PY'
import ast, sys
m = ast.literal_eval(sys.argv[1])
assert m["volume"]["name"] == "vpause" and m["volume"]["driver"] == "local", m
assert m["quiesce"]["window_ns"] > 0 and m["quiesce"]["two_phase"] is True, m
assert m["quiesce"]["containers"][0]["action"] == "pause", m
assert m["mounts"][0]["destination"] == "/data", m
PY
        docker rm -f wpause > /dev/null
}

@test "stop: the container is stopped for the copy and started again" {
        docker volume create vstop > /dev/null
        start_writer wstop vstop --label berth.quiesce=stop
        started_before=$(docker inspect -f '{{.State.StartedAt}}' wstop)
        run berth backup vstop --no-two-phase
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"stopped wstop"* ]]
        wait_state wstop running
        [ "$(docker inspect -f '{{.State.StartedAt}}' wstop)" != "$started_before" ]
        berth restore vstop --target "$T/out"
        run check_log "$T/out/log"
        [ "$status" -eq 0 ]
        # --quiesce overrides the label
        run berth backup vstop --quiesce none
        [ "$status" -eq 0 ]
        [[ "$output" != *"quiesce window"* ]]
        docker rm -f wstop > /dev/null
}

@test "a container that was not running is left as it was" {
        docker volume create vidle > /dev/null
        docker create --name idle -v vidle:/data berth-test:latest idle > /dev/null
        docker run -d --name frozen -v vidle:/more berth-test:latest idle > /dev/null
        docker pause frozen > /dev/null
        run berth backup vidle --quiesce stop
        [ "$status" -eq 0 ]
        [ "$(state idle)" = created ]
        [ "$(state frozen)" = paused ]
        docker unpause frozen > /dev/null
        docker rm -f idle frozen > /dev/null
}

@test "pre and post hooks run inside the container around the copy" {
        docker volume create vhook > /dev/null
        docker run -d --name hooked -v vhook:/data \
                --label berth.pre='echo dumped > /data/pre-marker' \
                --label berth.post='touch /post-marker' \
                berth-test:latest idle > /dev/null
        wait_state hooked running
        run berth backup vhook
        echo "$output"
        [ "$status" -eq 0 ]
        # pre ran before the copy: its file is in the snapshot
        [ "$(berth cat vhook pre-marker)" = dumped ]
        # post ran after: its marker exists in the container
        docker exec hooked test -f /post-marker
        [ "$(state hooked)" = running ]
        docker rm -f hooked > /dev/null
}

@test "a failing pre hook abandons the backup and resumes everything" {
        docker volume create vfail > /dev/null
        docker run -d --name failing -v vfail:/data --label berth.pre='echo no >&2; exit 3' \
                berth-test:latest idle > /dev/null
        wait_state failing running
        run berth backup vfail
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"pre hook of container 'failing'"*"exited with status 3"* ]]
        [ "$(state failing)" = running ]
        [ "$(berth --json snapshots vfail | json_get '.__len__()')" -eq 0 ]
        docker rm -f failing > /dev/null
}

@test "kill -9 while a container is paused: recover, or the next berth run, puts it back" {
        docker volume create vkill > /dev/null
        mp=$(mountpoint_of vkill)
        for i in $(seq 1 10); do head -c 40000000 /dev/urandom > "$mp/f$i"; done
        docker run -d --name victim -v vkill:/data berth-test:latest idle > /dev/null
        wait_state victim running
        "$BERTH" backup vkill --no-two-phase > /dev/null 2>&1 &
        pid=$!
        wait_state victim paused
        kill -9 "$pid"
        wait "$pid" || true
        [ "$(state victim)" = paused ]
        run berth recover
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"put back 1 container"* ]]
        [ "$(state victim)" = running ]

        # again, with stop; this time a read-only command notices
        "$BERTH" backup vkill --no-two-phase --quiesce stop > /dev/null 2>&1 &
        pid=$!
        wait_state victim exited
        kill -9 "$pid"
        wait "$pid" || true
        [ "$(state victim)" = exited ]
        run berth snapshots
        echo "$output"
        [[ "$output" == *"started container 'victim'"* ]]
        wait_state victim running
        run berth recover
        [[ "$output" == *"no container needed putting back"* ]]
        docker rm -f victim > /dev/null
}

@test "recover finds a compose container that was recreated while it was stopped" {
        docker volume create vcomp > /dev/null
        mp=$(mountpoint_of vcomp)
        for i in $(seq 1 10); do head -c 40000000 /dev/urandom > "$mp/f$i"; done
        labels=(--label com.docker.compose.project=shop --label com.docker.compose.service=db)
        docker run -d --name shop-db-1 "${labels[@]}" -v vcomp:/data berth-test:latest idle > /dev/null
        wait_state shop-db-1 running
        "$BERTH" backup vcomp --quiesce stop --no-two-phase > /dev/null 2>&1 &
        pid=$!
        wait_state shop-db-1 exited
        kill -9 "$pid"
        wait "$pid" || true
        # compose recreates the service's container: same labels, new id, not started
        docker rm shop-db-1 > /dev/null
        docker create --name shop-db-1 "${labels[@]}" -v vcomp:/data berth-test:latest idle > /dev/null
        run berth recover
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"put back 1 container"* ]]
        wait_state shop-db-1 running
        docker rm -f shop-db-1 > /dev/null
}

@test "SIGTERM during a quiesced copy resumes the container and writes no snapshot" {
        docker volume create vterm > /dev/null
        mp=$(mountpoint_of vterm)
        for i in $(seq 1 10); do head -c 40000000 /dev/urandom > "$mp/f$i"; done
        docker run -d --name termed -v vterm:/data berth-test:latest idle > /dev/null
        wait_state termed running
        "$BERTH" backup vterm --no-two-phase > "$T/out" 2>&1 &
        pid=$!
        wait_state termed paused
        kill -TERM "$pid"
        run wait "$pid"
        [ "$status" -ne 0 ]
        [ "$(state termed)" = running ]
        grep -q "interrupted" "$T/out"
        [ "$(berth --json snapshots vterm | json_get '.__len__()')" -eq 0 ]
        docker rm -f termed > /dev/null
}

@test "--all backs up every volume, one snapshot each" {
        for v in all1 all2 all3; do
                docker volume create "$v" > /dev/null
                echo "$v" > "$(mountpoint_of "$v")/name"
        done
        run berth backup --all
        echo "$output"
        [ "$status" -eq 0 ]
        for v in all1 all2 all3; do
                [ "$(berth cat "$v" name)" = "$v" ]
        done
}

@test "--container backs up its named and anonymous volumes under one window, skipping tmpfs and binds" {
        docker volume create cnamed > /dev/null
        mkdir -p "$T/bind"
        echo bound > "$T/bind/file"
        docker run -d --name shop -v cnamed:/named -v /anon --tmpfs /scratch -v "$T/bind:/etc/shop" \
                berth-test:latest sh -c 'trap "exit 0" TERM; echo n > /named/f; echo a > /anon/f; while :; do sleep 0.2; done' > /dev/null
        wait_state shop running
        sleep 0.3
        run berth backup --container shop
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"skipping bind mount $T/bind -> /etc/shop"* ]]
        [[ "$output" == *"skipping tmpfs mount /scratch"* ]]
        [ "$(echo "$output" | grep -c 'quiesce window')" -eq 1 ]
        [ "$(berth cat cnamed f)" = n ]
        [ "$(berth cat shop:/anon f)" = a ]
        run berth backup --container shop --binds
        [ "$status" -eq 0 ]
        [ "$(berth cat shop:/etc/shop file)" = bound ]
        [ "$(state shop)" = running ]
        docker rm -f shop > /dev/null
}

@test "restore into a new volume recreates it with the original driver, options and labels, file by file" {
        make_tree "$T/tree" 2> /dev/null || true
        berth backup --path "$T/tree" --name treevol > /dev/null
        # the tree restored into a fresh volume, compared entry by entry
        run berth restore treevol --to-volume vrestored
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/tree" "$(mountpoint_of vrestored)"
        echo "$output"
        [ "$status" -eq 0 ]
        # a labelled volume comes back with its labels and data
        docker volume create --label team=db vlab > /dev/null
        echo x > "$(mountpoint_of vlab)/x"
        berth backup vlab > /dev/null
        docker volume rm vlab > /dev/null
        run berth restore vlab --to-volume vlab
        [ "$status" -eq 0 ]
        [ "$(docker volume inspect -f '{{index .Labels "team"}}' vlab)" = db ]
        docker run --rm -v vlab:/data berth-test:latest cat /data/x | grep -qx x
}

@test "a mount-backed volume is backed up while mounted; its driver options are shown, not applied" {
        docker volume create --opt type=tmpfs --opt device=tmpfs --opt o=size=64m vtmp > /dev/null
        # not mounted: its data is not on this host now; refuse rather than save nothing
        run berth backup vtmp
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"mounted (type=tmpfs) only while a container uses it"* ]]
        docker run -d --name tmpuser -v vtmp:/data berth-test:latest \
                sh -c 'trap "exit 0" TERM; echo inram > /data/f; while :; do sleep 0.2; done' > /dev/null
        wait_state tmpuser running
        sleep 0.3
        run berth backup vtmp
        [ "$status" -eq 0 ]
        [ "$(berth cat vtmp f)" = inram ]
        run berth restore vtmp --to-volume vtmp2
        [ "$status" -eq 0 ]
        [[ "$output" == *"not applied"*"type=tmpfs"* ]]
        [ "$(docker volume inspect -f '{{index .Options "type"}}' vtmp2)" = "" ]
        [ "$(docker run --rm -v vtmp2:/data berth-test:latest cat /data/f)" = inram ]
        docker rm -f tmpuser > /dev/null
}

@test "restore refuses a non-empty or in-use volume; --force replaces it and restarts its users" {
        docker volume create vsrc > /dev/null
        echo new > "$(mountpoint_of vsrc)/data"
        berth backup vsrc > /dev/null
        docker volume create vbusy > /dev/null
        echo old > "$(mountpoint_of vbusy)/data"
        echo stale > "$(mountpoint_of vbusy)/stale"
        docker run -d --name user -v vbusy:/data berth-test:latest idle > /dev/null
        wait_state user running
        run berth restore vsrc --to-volume vbusy
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"volume 'vbusy' is not empty and is used by running container(s) 'user'"* ]]
        [ "$(cat "$(mountpoint_of vbusy)/data")" = old ]
        run berth restore vsrc --to-volume vbusy --force
        echo "$output"
        [ "$status" -eq 0 ]
        wait_state user running
        [ "$(docker exec user cat /data/data)" = new ]
        [ ! -e "$(mountpoint_of vbusy)/stale" ]
        docker rm -f user > /dev/null
}

@test "compose projects: dependants are stopped first and started last" {
        docker volume create shared > /dev/null
        docker run -d --name p-db --label com.docker.compose.project=p --label com.docker.compose.service=db \
                -v shared:/db berth-test:latest idle > /dev/null
        docker run -d --name p-web --label com.docker.compose.project=p --label com.docker.compose.service=web \
                --label com.docker.compose.depends_on=db:service_started:false -v shared:/web \
                berth-test:latest idle > /dev/null
        wait_state p-db running
        wait_state p-web running
        since=$(date +%s)
        run berth backup shared --quiesce stop --no-two-phase
        echo "$output"
        [ "$status" -eq 0 ]
        wait_state p-db running
        wait_state p-web running
        events=$(docker events --since "$since" --until "$(($(date +%s) + 1))" --filter event=stop --filter event=start \
                --format '{{.Action}} {{.Actor.Attributes.name}}' | tr '\n' ' ')
        echo "$events"
        [[ "$events" == *"stop p-web"*"stop p-db"*"start p-db"*"start p-web"* ]]
        docker rm -f p-db p-web > /dev/null
}

@test "a swarm service task is never stopped: a clear message when its policy says stop" {
        docker volume create vswarm > /dev/null
        docker run -d --name task1 --label com.docker.swarm.service.name=web -v vswarm:/data \
                berth-test:latest idle > /dev/null
        wait_state task1 running
        run berth backup vswarm --quiesce stop
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"task of swarm service 'web'"*"--quiesce pause"* ]]
        [ "$(state task1)" = running ]
        run berth backup vswarm
        [ "$status" -eq 0 ]
        docker rm -f task1 > /dev/null
}

@test "a missing volume and an unreachable Docker daemon are clear errors" {
        run berth backup no-such-volume
        [ "$status" -eq 1 ]
        [[ "$output" == *"no Docker volume named 'no-such-volume'"* ]]
        run env DOCKER_HOST=unix:///nonexistent.sock BERTH_DOCKER_WAIT=1 "$BERTH" backup x
        [ "$status" -eq 1 ]
        [[ "$output" == *"cannot reach the Docker daemon at /nonexistent.sock"* ]]
}

@test "volume commands have --help" {
        for c in volumes recover; do
                run berth "$c" --help
                [ "$status" -eq 0 ]
                [[ "$output" == Usage:* ]]
        done
}
