# sshd.bash — a real OpenSSH server on 127.0.0.1 for the transport tests.
#
# sshd_up DIR   generates throwaway host keys (ed25519 and ECDSA) and a user
#               key in DIR, writes a config and starts Debian's sshd on a free
#               port.  Sets SSHD_DIR, SSHD_PORT, SSHD_PID, SSHD_USER_KEY (the
#               private key authorized for root), SSHD_DEST (root@127.0.0.1:PORT).
#               SSHD_PORT set beforehand reuses that port (a restart).
#               SSHD_EXTRA, when set, is appended to the config.
# sshd_down     stops it, by its pid.
# sshd_known_line TYPE   "[127.0.0.1]:PORT TYPE KEY" for one of its host keys
#               (TYPE is ed25519 or ecdsa).
# sshd_repo_setup   for tests of ssh:// repositories: a new $T (HOME and
#               BERTH_CACHE_DIR in it; no BERTH_* settings or ssh-agent from
#               outside), sshd up, KH=$T/known_hosts with its ed25519 key,
#               REPO=$T/repo, URL=ssh://root@127.0.0.1:PORT$REPO; cd $T.
# sshd_repo_teardown   kills $BG_PIDS (-9), stops sshd, removes $T after a
#               passed test, else keeps it and shows the end of sshd's log.
# The tests run as root: PermitRootLogin prohibit-password lets the key in.

sshd_free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

sshd_keys() {
        local d=$1
        rm -f "$d"/host_ed25519* "$d"/host_ecdsa*
        ssh-keygen -q -t ed25519 -N '' -C berth-test-host -f "$d/host_ed25519"
        ssh-keygen -q -t ecdsa -b 256 -N '' -C berth-test-host -f "$d/host_ecdsa"
}

sshd_up() {
        SSHD_DIR=$1
        mkdir -p "$SSHD_DIR" /run/sshd
        chmod 0700 "$SSHD_DIR"
        [ -e "$SSHD_DIR/host_ed25519" ] || sshd_keys "$SSHD_DIR"
        if [ ! -e "$SSHD_DIR/user_key" ]; then
                ssh-keygen -q -t ed25519 -N '' -C berth-test-user -f "$SSHD_DIR/user_key"
                cp "$SSHD_DIR/user_key.pub" "$SSHD_DIR/authorized_keys"
        fi
        SSHD_USER_KEY=$SSHD_DIR/user_key
        SSHD_PORT=${SSHD_PORT:-$(sshd_free_port)}
        SSHD_DEST=root@127.0.0.1:$SSHD_PORT
        # HostKey order and HostKeyAlgorithms put ECDSA first: the server's
        # own preference, which a client's known key type must override.
        cat > "$SSHD_DIR/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_DIR/host_ecdsa
HostKey $SSHD_DIR/host_ed25519
HostKeyAlgorithms ecdsa-sha2-nistp256,ssh-ed25519
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $SSHD_DIR/sshd.pid
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
${SSHD_EXTRA:-}
CONF
        /usr/sbin/sshd -D -e -f "$SSHD_DIR/sshd_config" 2>>"$SSHD_DIR/sshd.log" &
        SSHD_PID=$!
        local i
        for i in $(seq 1 100); do
                if (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null; then
                        return 0
                fi
                if ! kill -0 "$SSHD_PID" 2>/dev/null; then
                        cat "$SSHD_DIR/sshd.log" >&2
                        return 1
                fi
                sleep 0.05
        done
        echo "sshd did not listen on port $SSHD_PORT" >&2
        return 1
}

sshd_down() {
        if [ -n "${SSHD_PID:-}" ]; then
                kill "$SSHD_PID" 2>/dev/null || true
                wait "$SSHD_PID" 2>/dev/null || true
                SSHD_PID=
        fi
}

sshd_known_line() {
        printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$SSHD_DIR/host_$1.pub")"
}

# The SHA256: fingerprint of one of its host keys, as ssh-keygen shows it.
sshd_fingerprint() {
        ssh-keygen -l -E sha256 -f "$SSHD_DIR/host_$1.pub" | cut -d' ' -f2
}

sshd_repo_setup() {
        command -v /usr/sbin/sshd >/dev/null || skip "openssh-server is not installed"
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export HOME=$T/home
        mkdir -p "$HOME"
        unset SSH_AUTH_SOCK SSH_AGENT_PID BERTH_REPO BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
        unset BERTH_SSH_IDENTITY BERTH_SSH_KNOWN_HOSTS BERTH_REMOTE_BERTH
        export BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=notice
        export BERTH_CACHE_DIR=$T/cache
        KH=$T/known_hosts
        unset SSHD_PORT SSHD_EXTRA
        sshd_up "$T/sshd"
        sshd_known_line ed25519 > "$KH"
        REPO=$T/repo
        URL=ssh://root@127.0.0.1:$SSHD_PORT$REPO
        cd "$T" # a berth that takes ssh:// for a local path creates nothing in the worktree
}

sshd_repo_teardown() {
        for p in ${BG_PIDS:-}; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
        sshd_down
        if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
                chattr -R -i -a "$T" 2>/dev/null || true
                rm -rf "$T"
        else
                echo "# kept $T for inspection" >&3
                [ ! -e "$T/sshd/sshd.log" ] || sed 's/^/# sshd: /' "$T/sshd/sshd.log" | tail -n 20 >&3
        fi
}
