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
