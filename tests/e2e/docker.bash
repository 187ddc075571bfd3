# docker.bash — a private Docker daemon for the tests that need one.
#
# docker_up starts dockerd with its own data-root, exec-root, socket and
# pidfile (no iptables, no bridge), imports a tiny busybox image as
# berth-test:latest, and exports DOCKER_HOST.  docker_down stops it by its
# pid.  Call them from setup_file/teardown_file.

docker_up() {
        DK=$(mktemp -d /tmp/bd.XXXXXX)
        export DK
        dockerd --data-root "$DK/root" --exec-root "$DK/exec" --host "unix://$DK/sock" \
                --pidfile "$DK/pid" --iptables=false --ip6tables=false --bridge=none \
                > "$DK/log" 2>&1 &
        echo $! > "$DK/dockerd.pid"
        export DOCKER_HOST="unix://$DK/sock"
        for _ in $(seq 1 100); do
                docker version > /dev/null 2>&1 && break
                sleep 0.2
        done
        docker version > /dev/null || { cat "$DK/log" >&2; return 1; }
        mkdir -p "$DK/img/bin"
        cp "$(command -v busybox)" "$DK/img/bin/busybox"
        for c in sh ls cat echo sleep touch date seq printf test mkdir rm dd head sync kill wc; do
                ln -sf busybox "$DK/img/bin/$c"
        done
        # PID 1 of a container ignores SIGTERM unless it traps it: "idle"
        # waits and exits on TERM at once, as a well-behaved service does.
        printf '#!/bin/sh\ntrap "exit 0" TERM\nwhile :; do sleep 0.2; done\n' > "$DK/img/bin/idle"
        chmod 755 "$DK/img/bin/idle"
        tar -C "$DK/img" -c . | docker import - berth-test:latest > /dev/null
}

docker_down() {
        [ -n "${DK:-}" ] || return 0
        docker ps -aq 2>/dev/null | xargs -r docker rm -f > /dev/null 2>&1 || true
        local pid
        pid=$(cat "$DK/dockerd.pid" 2>/dev/null || true)
        if [ -n "$pid" ]; then
                kill "$pid" 2>/dev/null || true
                for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$pid" 2>/dev/null || true
        fi
        chattr -R -i -a "$DK/root/volumes" 2>/dev/null || true
        { grep -o " $DK[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r |
                while read -r m; do umount "$m" 2>/dev/null || true; done
        rm -rf "$DK"
}

# Waits until container $1 is in state $2 (running, paused, exited).
wait_state() {
        for _ in $(seq 1 150); do
                [ "$(docker inspect -f '{{.State.Status}}' "$1" 2>/dev/null)" = "$2" ] && return 0
                sleep 0.1
        done
        echo "container $1 is $(docker inspect -f '{{.State.Status}}' "$1"), not $2" >&2
        return 1
}

state() { docker inspect -f '{{.State.Status}}' "$1"; }
mountpoint_of() { docker volume inspect -f '{{.Mountpoint}}' "$1"; }
