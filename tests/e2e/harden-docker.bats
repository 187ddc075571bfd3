#!/usr/bin/env bats
# Hardening of the Docker side (issue 8): a repository is data, not
# instructions (recorded volume options, forged quiesce journal rows);
# volumes with mount options; containers always come back, in a bounded
# window, even while a hung backup holds the repository.

load lib
load docker

setup_file() {
        docker_up
}

teardown_file() {
        docker_down
}

# Options of a volume as JSON ({} or null when it has none).
vol_opts() { docker volume inspect -f '{{json .Options}}' "$1"; }
no_opts() { local o; o=$(vol_opts "$1"); [ "$o" = null ] || [ "$o" = "{}" ]; }

@test "recorded bind options are shown, not applied; applied with --volume-opts-from-snapshot or --volume-opt" {
        mkdir -p "$T/src"
        echo hostdata > "$T/src/f"
        docker volume create --opt type=none --opt o=bind --opt device="$T/src" vbind > /dev/null
        docker run -d --name binduser -v vbind:/data berth-test:latest idle > /dev/null
        wait_state binduser running
        run berth backup vbind
        echo "$output"
        [ "$status" -eq 0 ]
        docker rm -f binduser > /dev/null

        # by default: a plain volume with the data, the options only shown
        run berth restore vbind --to-volume vplain
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"not applied"* ]]
        [[ "$output" == *"device=$T/src"* ]]
        [[ "$output" == *"o=bind"* && "$output" == *"type=none"* ]]
        [[ "$output" == *"--volume-opts-from-snapshot"* && "$output" == *"--volume-opt KEY=VALUE"* ]]
        no_opts vplain
        [ "$(docker run --rm -v vplain:/data berth-test:latest cat /data/f)" = hostdata ]
        [ "$(ls "$T/src")" = f ]

        # after reading them, the user applies them: the data lands in the bound directory
        docker volume rm vbind > /dev/null
        rm -rf "$T/src"
        run berth restore vbind --to-volume vbind --volume-opts-from-snapshot
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" != *"not applied"* ]]
        [ "$(docker volume inspect -f '{{index .Options "device"}}' vbind)" = "$T/src" ]
        [ "$(cat "$T/src/f")" = hostdata ]
        [ "$(docker run --rm -v vbind:/data berth-test:latest cat /data/f)" = hostdata ]

        # or gives their own
        run berth restore vbind --to-volume vmine --volume-opt type=none --volume-opt o=bind \
                --volume-opt device="$T/mine"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(docker volume inspect -f '{{index .Options "device"}}' vmine)" = "$T/mine" ]
        [ "$(docker run --rm -v vmine:/data berth-test:latest cat /data/f)" = hostdata ]

        run berth restore vbind --target "$T/x" --volume-opt a=b
        [ "$status" -eq 2 ]
        run berth restore vbind --to-volume vbad --volume-opt novalue
        [ "$status" -eq 2 ]
}

@test "options planted in a repository's snapshot metadata never bind-mount a host path" {
        mkdir -p "$T/data" "$T/victim"
        echo payload > "$T/data/f"
        echo precious > "$T/victim/keep"
        berth backup --path "$T/data" --name planted > /dev/null
        sqlite3 "$BERTH_REPO/catalog.db" "UPDATE snapshots SET meta = '{\"kind\":\"volume\",\"volume\":{\"name\":\"planted\",\"driver\":\"local\",\"options\":{\"type\":\"none\",\"o\":\"bind\",\"device\":\"$T/victim\"},\"labels\":{\"team\":\"x\"}}}'"
        run berth restore planted --to-volume vplanted
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"not applied (device=$T/victim"* || "$output" == *"not applied (type=none, o=bind, device=$T/victim"* ]]
        no_opts vplanted
        # labels are data too, and harmless: they are kept
        [ "$(docker volume inspect -f '{{index .Labels "team"}}' vplanted)" = x ]
        [ "$(ls "$T/victim")" = keep ]
        [ "$(docker run --rm -v vplanted:/data berth-test:latest cat /data/f)" = payload ]
}

@test "a volume with mount options is refused, never reported restored where no container sees it" {
        mkdir -p "$T/data"
        echo payload > "$T/data/f"
        berth backup --path "$T/data" --name plain > /dev/null

        # an existing tmpfs volume: Docker's directory for it is not what a container sees
        docker volume create --opt type=tmpfs --opt device=tmpfs --opt o=size=16m vtmpfs > /dev/null
        run berth restore plain --to-volume vtmpfs
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"volume 'vtmpfs' is a tmpfs mount"*"restore into a volume without mount options"* ]]
        [ -z "$(ls -A "$(mountpoint_of vtmpfs)")" ]

        # an nfs volume
        docker volume create --opt type=nfs --opt o=addr=127.0.0.1,rw --opt device=:/export vnfs > /dev/null
        run berth restore plain --to-volume vnfs
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"volume 'vnfs' is a mount (device=:/export"*"--target DIR"* ]]
        [ -z "$(ls -A "$(mountpoint_of vnfs)")" ]

        # a new volume with such options is refused before it is created
        run berth restore plain --to-volume vnewtmp --volume-opt type=tmpfs --volume-opt device=tmpfs
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"tmpfs mount"* ]]
        run docker volume inspect vnewtmp
        [ "$status" -ne 0 ]

        # a bind volume is restored into the directory it binds, where containers see it
        mkdir -p "$T/bound"
        docker volume create --opt type=none --opt o=bind --opt device="$T/bound" vbound > /dev/null
        run berth restore plain --to-volume vbound
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(cat "$T/bound/f")" = payload ]
        [ "$(docker run --rm -v vbound:/data berth-test:latest cat /data/f)" = payload ]
}

@test "a tmpfs snapshot's options, applied on request, are refused rather than restored into nothing" {
        docker volume create --opt type=tmpfs --opt device=tmpfs --opt o=size=16m vmem > /dev/null
        docker run -d --name memuser -v vmem:/data berth-test:latest \
                sh -c 'trap "exit 0" TERM; echo inram > /data/f; while :; do sleep 0.2; done' > /dev/null
        wait_state memuser running
        sleep 0.3
        berth backup vmem > /dev/null
        docker rm -f memuser > /dev/null
        run berth restore vmem --to-volume vmem2 --volume-opts-from-snapshot
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"volume 'vmem2' is a tmpfs mount"* ]]
        run docker volume inspect vmem2
        [ "$status" -ne 0 ]
        # without the options: a plain volume a container sees
        run berth restore vmem --to-volume vmem3
        [ "$status" -eq 0 ]
        [ "$(docker run --rm -v vmem3:/data berth-test:latest cat /data/f)" = inram ]
}

# fill VOLUME N: N files of 40 MB of random data in the volume.
fill() {
        local mp i
        mp=$(mountpoint_of "$1")
        for i in $(seq 1 "$2"); do head -c 40000000 /dev/urandom > "$mp/f$i"; done
}

@test "a forged quiesce journal row starts nothing, in snapshots or recover, and is named in a warning" {
        docker volume create vforge > /dev/null
        docker run -d --name opstopped -v vforge:/data berth-test:latest idle > /dev/null
        wait_state opstopped running
        docker stop opstopped > /dev/null
        wait_state opstopped exited
        berth init > /dev/null
        cid=$(docker inspect -f '{{.Id}}' opstopped)
        sqlite3 "$BERTH_REPO/catalog.db" "INSERT INTO quiesce_journal (container, container_name, action, host,
                owner_pid, owner_start, started) VALUES ('$cid', 'opstopped', 'stop', '$(hostname)', 999999, 1, 1)"
        run berth snapshots
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"ignoring quiesce journal row 1 (stop container 'opstopped')"* ]]
        sleep 0.5
        [ "$(state opstopped)" = exited ]
        run berth recover
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"ignoring quiesce journal row 1"* ]]
        [[ "$output" == *"no container needed putting back"* ]]
        [ "$(state opstopped)" = exited ]
        # a row with a made-up HMAC is no better
        sqlite3 "$BERTH_REPO/catalog.db" "UPDATE quiesce_journal SET mac = '$(printf '%064d' 7)'"
        run berth recover
        [[ "$output" == *"ignoring quiesce journal row 1"* ]]
        [ "$(state opstopped)" = exited ]
        # berth's own rows still work: kill -9 while paused, and recover puts it back
        docker start opstopped > /dev/null
        wait_state opstopped running
        fill vforge 10
        "$BERTH" backup vforge --no-two-phase > /dev/null 2>&1 &
        pid=$!
        wait_state opstopped paused
        kill -9 "$pid"
        wait "$pid" || true
        run berth recover
        echo "$output"
        [[ "$output" == *"put back 1 container"* ]]
        [ "$(state opstopped)" = running ]
        # a key others can read signs nothing: berth refuses to quiesce with it
        mkdir -p "$T/state"
        head -c 32 /dev/urandom > "$T/state/journal.key"
        chmod 644 "$T/state/journal.key"
        BERTH_STATE_DIR="$T/state" run berth backup vforge --no-two-phase
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"journal key $T/state/journal.key must belong to uid 0"*"chmod 600"* ]]
        [ "$(state opstopped)" = running ]
        docker rm -f opstopped > /dev/null
}

@test "two quick SIGTERMs while paused: berth still resumes every container before it exits" {
        docker volume create vsig > /dev/null
        fill vsig 10
        for i in 1 2 3 4 5 6; do
                docker run -d --name "sigged$i" -v vsig:/data berth-test:latest idle > /dev/null
        done
        for i in 1 2 3 4 5 6; do wait_state "sigged$i" running; done
        "$BERTH" backup vsig --no-two-phase > "$T/out" 2>&1 &
        pid=$!
        for i in 1 2 3 4 5 6; do wait_state "sigged$i" paused; done
        kill -TERM "$pid"
        # the second one arrives while the containers are being resumed
        sleep 0.05
        kill -TERM "$pid" 2> /dev/null || true
        rc=0
        wait "$pid" || rc=$?
        cat "$T/out"
        echo "exit status $rc"
        [ "$rc" -ne 0 ]
        for i in 1 2 3 4 5 6; do [ "$(state "sigged$i")" = running ]; done
        grep -q "interrupted" "$T/out"
        [ "$(berth --json snapshots vsig | json_get '.__len__()')" -eq 0 ]
        run berth recover
        [[ "$output" == *"no container needed putting back"* ]]
        for i in 1 2 3 4 5 6; do docker rm -f "sigged$i" > /dev/null; done
}

@test "--max-window: a quiesced copy that takes too long is abandoned, the container resumed, exit 1" {
        docker volume create vwin > /dev/null
        fill vwin 20
        docker run -d --name windowed -v vwin:/data berth-test:latest idle > /dev/null
        wait_state windowed running
        run timeout -k 5 120 "$BERTH" backup vwin --no-two-phase --max-window 1
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"took longer than --max-window 1s"*"containers resumed"* ]]
        [ "$(state windowed)" = running ]
        [ "$(berth --json snapshots vwin | json_get '.__len__()')" -eq 0 ]
        run berth backup vwin --max-window 0
        [ "$status" -eq 2 ]
        docker rm -f windowed > /dev/null
}

@test "the first pass is durable before the application is quiesced (packs written before the pre hook)" {
        berth init > /dev/null
        mkdir -p "$T/seen"
        docker volume create vflush > /dev/null
        head -c 5000000 /dev/urandom > "$(mountpoint_of vflush)/f"
        docker run -d --name flusher -v vflush:/data -v "$BERTH_REPO:/repo:ro" -v "$T/seen:/seen" \
                --label berth.pre='ls -R /repo/packs > /seen/packs' berth-test:latest idle > /dev/null
        wait_state flusher running
        run berth backup vflush
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"two-phase"* ]]
        cat "$T/seen/packs"
        grep -Eq '^[0-9a-f]{64}' "$T/seen/packs"
        docker rm -f flusher > /dev/null
}

@test "recover puts back a container while a stuck backup holds the repository; that backup then fails" {
        docker volume create vstuck > /dev/null
        fill vstuck 20
        docker run -d --name stuck -v vstuck:/data berth-test:latest idle > /dev/null
        wait_state stuck running
        # every chunk stored already: the stuck run writes nothing to the catalog
        berth backup vstuck --quiesce none > /dev/null
        "$BERTH" backup vstuck --no-two-phase --force-read > "$T/out" 2>&1 &
        pid=$!
        BG_PIDS="$pid"
        wait_state stuck paused
        sleep 0.2
        kill -STOP "$pid"
        run timeout -k 5 60 "$BERTH" recover
        kill -CONT "$pid"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"put back 1 container"* ]]
        [ "$(state stuck)" = running ]
        rc=0
        timeout 120 tail --pid="$pid" -f /dev/null
        wait "$pid" || rc=$?
        BG_PIDS=
        cat "$T/out"
        [ "$rc" -eq 1 ]
        grep -q "'berth recover' put its containers back during the quiesced copy" "$T/out"
        [ "$(berth --json snapshots vstuck | json_get '.__len__()')" -eq 1 ]
        docker rm -f stuck > /dev/null
}
