#!/usr/bin/env bats
# restore --to-volume that fails part-way: nothing outside its staging
# directory changes, the old contents stay, the containers run again.

load lib
load docker

setup_file() {
        docker_up
}

teardown_file() {
        docker_down
}

make_cwd() {
        local w=$1
        mkdir -p "$w/a/b" "$w/etc"
        chmod 0755 "$w" "$w/a" "$w/a/b" "$w/etc"
        touch -d '2020-01-01 00:00:00' "$w/a/b" "$w/a" "$w/etc" "$w"
}

describe_dirs() {
        for p in "$1" "$1/a" "$1/a/b" "$1/etc"; do
                stat -c '%n %a %u %g %Y' "$p"
                getfacl -cp "$p" 2>/dev/null | sort
                lsattr -d "$p" 2>/dev/null | cut -d' ' -f1
        done
}

@test "restore --to-volume failing on damaged data changes nothing in the working directory nor the old volume" {
        docker volume create hv-src > /dev/null
        d=$(mountpoint_of hv-src)
        mkdir -p "$d/a/b" "$d/etc"
        echo small > "$d/a/b/file"
        head -c 4000000 /dev/urandom > "$d/z-big"
        chmod 0700 "$d/a" && chmod 0750 "$d/a/b" "$d/etc"
        setfacl -d -m u:4242:rwx "$d/a"
        touch -d '2001-02-03 04:05:06' "$d/a/b" "$d/a" "$d/etc"
        berth init
        berth backup hv-src > /dev/null
        python3 - "$d/z-big" "$BERTH_REPO/packs" <<'PY'
import os, sys
needle = open(sys.argv[1], 'rb').read()[2000000:2000064]
for root, _, files in os.walk(sys.argv[2]):
    for f in files:
        p = os.path.join(root, f)
        data = bytearray(open(p, 'rb').read())
        i = data.find(needle)
        if i >= 0:
            data[i + 10] ^= 0xff
            open(p, 'wb').write(data)
            sys.exit(0)
sys.exit("not found")
PY
        make_cwd "$T/w"
        before=$(describe_dirs "$T/w")
        # into a new volume
        run sh -c "cd '$T/w' && exec timeout -k 5 120 '$BERTH' restore hv-src --to-volume hv-new"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"damaged"* ]]
        [ "$(describe_dirs "$T/w")" = "$before" ]
        if docker volume inspect hv-new > /dev/null 2>&1; then
                [ -z "$(ls -A "$(mountpoint_of hv-new)")" ]
        fi
        # over a volume in use, with --force: old contents kept, container running again
        docker volume create hv-old > /dev/null
        o=$(mountpoint_of hv-old)
        mkdir -p "$o/a/b"
        echo old > "$o/a/b/file"
        docker run -d --name hv-user -v hv-old:/data berth-test:latest idle > /dev/null
        wait_state hv-user running
        old=$(cd "$o" && find . -printf '%p %m %T@\n' | sort)
        run sh -c "cd '$T/w' && exec timeout -k 5 120 '$BERTH' restore hv-src --to-volume hv-old --force"
        echo "$output"
        [ "$status" -ne 0 ]
        [ "$(describe_dirs "$T/w")" = "$before" ]
        [ "$(cd "$o" && find . -printf '%p %m %T@\n' | sort)" = "$old" ]
        [ -z "$(ls -a "$(dirname "$o")" | grep '^\.berth-restore')" ]
        wait_state hv-user running
}
