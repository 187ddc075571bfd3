#!/usr/bin/env bats
# ssh.bats — the SSH session layer (transport/ssh.c) against a real sshd:
# host keys checked the way ssh(1) does before any authentication, keys only,
# and the byte pipe to a remote command.  Driven through build/tests/ssh-probe.

load lib
load sshd

bats_require_minimum_version 1.5.0

setup() {
        command -v /usr/sbin/sshd >/dev/null || skip "openssh-server is not installed"
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export HOME=$T/home
        mkdir -p "$HOME"
        unset SSH_AUTH_SOCK SSH_AGENT_PID
        PROBE=${SSH_PROBE:-$(dirname "$(readlink -f "$BERTH")")/tests/ssh-probe}
        KH=$T/known_hosts
        unset SSHD_PORT SSHD_EXTRA
        sshd_up "$T/sshd"
}

teardown() {
        for p in ${BG_PIDS:-}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
        [ -z "${STOPPED:-}" ] || kill -CONT $STOPPED 2>/dev/null || true
        sshd_down
        [ -z "${AGENT_PID:-}" ] || kill "$AGENT_PID" 2>/dev/null || true
        if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
                rm -rf "$T"
        else
                echo "# kept $T for inspection" >&3
                [ ! -e "$T/sshd/sshd.log" ] || sed 's/^/# sshd: /' "$T/sshd/sshd.log" >&3
        fi
}

# probe [options] COMMAND: to our sshd as root with its user key and $KH
probe() {
        timeout -k 5 30 "$PROBE" -i "$SSHD_USER_KEY" --known-hosts "$KH" "$@"
}

# the line of an error message, for the assertions' sake
no_connection() {
        [ "$status" -eq 255 ]
        [[ "$output" != *"ran"* ]]
}

@test "ssh: a command runs; its stdout, stderr and exit status come back" {
        sshd_known_line ed25519 > "$KH"
        run --separate-stderr probe "$SSHD_DEST" 'echo out; echo err >&2; exit 3'
        [ "$status" -eq 3 ]
        [ "$output" = out ]
        [ "$stderr" = err ]

        run --separate-stderr probe "$SSHD_DEST" 'printf "%s" "$SSH_AUTH_SOCK"; kill -TERM $$'
        [ "$status" -eq $((128 + 15)) ]
        [ -z "$output" ] # no agent forwarded

        # stderr read on its own, before stdout
        run probe --stderr-first "$SSHD_DEST" 'echo one >&2; echo two; echo three >&2'
        [ "$status" -eq 0 ]
        [ "$output" = "$(printf -- '--- stderr\none\nthree\n--- stdout\ntwo')" ]
}

@test "ssh: bytes through the channel both ways, more than a window, unchanged" {
        sshd_known_line ed25519 > "$KH"
        head -c 7000000 /dev/urandom > "$T/big"
        # out: 7 MB of stdout, past libssh2's 2 MiB window
        probe "$SSHD_DEST" "cat '$T/big'" > "$T/back"
        cmp "$T/big" "$T/back"
        # in: 7 MB of stdin, then EOF, which the far side sees
        run probe --stdin "$SSHD_DEST" "sha256sum; echo eof-seen" < "$T/big"
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = "$(sha256sum < "$T/big")" ]
        [ "${lines[1]}" = eof-seen ]
        # in and out, stdin smaller than the pipe buffers
        run probe --stdin "$SSHD_DEST" "tr a-z A-Z" <<< "hello berth"
        [ "$output" = "HELLO BERTH" ]
        # nothing on stdout: a read returns end of file at once
        run probe "$SSHD_DEST" "true"
        [ "$status" -eq 0 ]
        [ -z "$output" ]
}

@test "ssh: an unknown host is refused with its SHA256 fingerprint, and nothing is recorded" {
        run probe "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"'[127.0.0.1]:$SSHD_PORT' is unknown"* ]]
        # libssh2 by itself would pick the ECDSA key: the server knows no better
        [[ "$output" == *"ecdsa-sha2-nistp256 key is $(sshd_fingerprint ecdsa) "* ]]
        [[ "$output" == *"--accept-new-host-key"* ]]
        [ ! -e "$KH" ]
        # no authentication was attempted before the refusal
        ! grep -q 'Accepted publickey\|Failed publickey\|Postponed publickey' "$T/sshd/sshd.log"
}

@test "ssh: --accept-new-host-key records the key (0600 file, 0700 directory), then it is known" {
        local kh=$HOME/.ssh/known_hosts
        run timeout -k 5 30 "$PROBE" -i "$SSHD_USER_KEY" --accept-new-host-key "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$output" = ran ]
        [ "$(stat -c %a "$HOME/.ssh")" = 700 ]
        [ "$(stat -c %a "$kh")" = 600 ]
        [ "$(cat "$kh")" = "$(sshd_known_line ecdsa)" ]
        # OpenSSH reads what we wrote
        ssh-keygen -F "[127.0.0.1]:$SSHD_PORT" -f "$kh" | grep -q ecdsa-sha2-nistp256
        # known now: no flag needed, nothing appended
        run timeout -k 5 30 "$PROBE" -i "$SSHD_USER_KEY" "$SSHD_DEST" 'echo again'
        [ "$status" -eq 0 ]
        [ "$output" = again ]
        [ "$(wc -l < "$kh")" -eq 1 ]
        # an existing file without a final newline gets one before the new line
        printf 'otherhost ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRGhEGb0Ry6C5ZBUgXHhQEcJFHXtAQW4TQYSKfVXmXs' > "$KH"
        run probe --accept-new-host-key "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$(sed -n 2p "$KH")" = "$(sshd_known_line ecdsa)" ]
}

@test "ssh: a changed host key is refused, naming the file and line, even with --accept-new-host-key" {
        { echo '# a comment'; sshd_known_line ecdsa; } > "$KH"
        run probe "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        # the host is reinstalled: new keys, same port
        sshd_down
        sshd_keys "$T/sshd"
        sshd_up "$T/sshd"
        cp "$KH" "$T/kh.before"
        run probe --accept-new-host-key "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"HOST KEY OF '[127.0.0.1]:$SSHD_PORT' HAS CHANGED"* ]]
        [[ "$output" == *"$(sshd_fingerprint ecdsa)"* ]]
        [[ "$output" == *"'$KH' line 2"* ]]
        cmp "$KH" "$T/kh.before"
}

@test "ssh: a known host offering a key of another type is changed, not unknown" {
        # known_hosts has an ed25519 key for us, but not the server's: the
        # server's ECDSA key is new to us and must not pass as a new host
        ssh-keygen -q -t ed25519 -N '' -f "$T/other"
        printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$T/other.pub")" > "$KH"
        run probe --accept-new-host-key "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"HAS CHANGED"* ]]
        [[ "$output" == *"'$KH' line 1"* ]]
        [ "$(wc -l < "$KH")" -eq 1 ]
}

@test "ssh: an entry for port 22 does not match another port, nor one for another port" {
        # the right key, but for port 22 and for port 1
        { printf '127.0.0.1 %s\n' "$(cut -d' ' -f1,2 "$T/sshd/host_ecdsa.pub")"
          printf '[127.0.0.1]:1 %s\n' "$(cut -d' ' -f1,2 "$T/sshd/host_ecdsa.pub")"
          printf '[127.0.0.1]:%s0 %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$T/sshd/host_ecdsa.pub")"
        } > "$KH"
        run probe "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"is unknown"* ]]
        # and with --accept-new-host-key the new line is for our port only
        run probe --accept-new-host-key "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$(sed -n 4p "$KH")" = "$(sshd_known_line ecdsa)" ]
}

@test "ssh: a known ed25519 key is used although the server prefers ECDSA" {
        sshd_known_line ed25519 > "$KH"
        run probe "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$output" = ran ]
        # and the other way round: only the ECDSA key known
        sshd_known_line ecdsa > "$KH"
        run probe "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$output" = ran ]
}

@test "ssh: hashed entries (ssh-keygen -H) are matched" {
        { echo 'somewhere ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRGhEGb0Ry6C5ZBUgXHhQEcJFHXtAQW4TQYSKfVXmXs'
          sshd_known_line ed25519; } > "$KH"
        ssh-keygen -q -H -f "$KH" >/dev/null 2>&1
        rm -f "$KH.old"
        ! grep -q 127.0.0.1 "$KH"
        [ "$(grep -c '^|1|' "$KH")" -eq 2 ]
        run probe "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$output" = ran ]
        # a hashed entry with the wrong key is a changed key
        sshd_down
        sshd_keys "$T/sshd"
        sshd_up "$T/sshd"
        run probe "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"HAS CHANGED"* ]]
        [[ "$output" == *"line 2"* ]]
}

@test "ssh: a @revoked key is refused even when another line accepts it" {
        { sshd_known_line ed25519
          printf '@revoked * %s\n' "$(cut -d' ' -f1,2 "$T/sshd/host_ed25519.pub")"; } > "$KH"
        run probe "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"is marked @revoked in '$KH' line 2"* ]]
        [[ "$output" == *"$(sshd_fingerprint ed25519)"* ]]
        # a @cert-authority line is no host key
        printf '@cert-authority * %s\n' "$(cut -d' ' -f1,2 "$T/sshd/host_ecdsa.pub")" > "$KH"
        run probe "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"is unknown"* ]]
}

@test "ssh: bad lines before the good one are skipped, not the end of the file" {
        { echo 'garbage'
          printf '[127.0.0.1]:%s ssh-ed25519 !!!not-base64!!!\n' "$SSHD_PORT"
          printf '[127.0.0.1]:%s ssh-ed25519 AAAA\n' "$SSHD_PORT"
          printf '@weird [127.0.0.1]:%s ssh-ed25519 AAAA\n' "$SSHD_PORT"
          # a blob of another type than its field says
          printf '[127.0.0.1]:%s ssh-ed25519 %s\n' "$SSHD_PORT" "$(cut -d' ' -f2 "$T/sshd/host_ecdsa.pub")"
          printf '|1|bm90IGEgc2FsdA==|garbage\n'
          head -c 100000 /dev/zero | tr '\0' x; echo
          sshd_known_line ed25519; } > "$KH"
        run probe "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$output" = ran ]
}

@test "ssh: a wrong user key is refused with a clear message; a password is never tried" {
        sshd_known_line ed25519 > "$KH"
        ssh-keygen -q -t ed25519 -N '' -f "$T/wrong"
        run timeout -k 5 30 "$PROBE" -i "$T/wrong" --known-hosts "$KH" "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"root@127.0.0.1:$SSHD_PORT refused user 'root'"* ]]
        [[ "$output" == *"'$T/wrong' (refused)"* ]]
        [[ "$output" == *"authentication refused"* ]]
        # no key at all: the default files are looked for, and we say so
        run timeout -k 5 30 "$PROBE" --known-hosts "$KH" "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"no key"* ]]
        # a key file that is not there
        run timeout -k 5 30 "$PROBE" -i "$T/missing" --known-hosts "$KH" "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"'$T/missing' (cannot read it"* ]]
        ! grep -q 'password' "$T/sshd/sshd.log"
        # a server that hangs up after too many refused keys: still a refusal
        sshd_down
        SSHD_EXTRA="MaxAuthTries 1" sshd_up "$T/sshd"
        mkdir -p "$HOME/.ssh"
        cp "$T/wrong" "$HOME/.ssh/id_ed25519"
        ssh-keygen -q -t ecdsa -N '' -f "$HOME/.ssh/id_ecdsa"
        run timeout -k 5 30 "$PROBE" --known-hosts "$KH" "$SSHD_DEST" 'echo ran'
        no_connection
        [[ "$output" == *"refused user 'root'"* ]]
        [[ "$output" == *"'$HOME/.ssh/id_ed25519' (refused)"* ]]
        [[ "$output" == *"authentication refused"* ]]
        rm "$HOME/.ssh/id_ecdsa"*
        # the default files: ~/.ssh/id_ed25519 is found without -i
        mkdir -p "$HOME/.ssh"
        cp "$SSHD_USER_KEY" "$HOME/.ssh/id_ed25519"
        run timeout -k 5 30 "$PROBE" --known-hosts "$KH" "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$output" = ran ]
}

@test "ssh: ssh-agent's keys are offered first" {
        sshd_known_line ed25519 > "$KH"
        eval "$(ssh-agent -a "$T/agent.sock" -s)" > /dev/null
        AGENT_PID=$SSH_AGENT_PID
        ssh-add -q "$SSHD_USER_KEY" 2>/dev/null
        run timeout -k 5 30 "$PROBE" --known-hosts "$KH" "$SSHD_DEST" 'echo ran'
        [ "$status" -eq 0 ]
        [ "$output" = ran ]
}

@test "ssh: keepalives hold a silent command's session; a server that stops answering times out" {
        sshd_known_line ed25519 > "$KH"
        # 10 s of silence with a 6 s I/O timeout: keepalive replies keep it up
        run probe --timeout 6 --keepalive 2 "$SSHD_DEST" 'sleep 10; echo done'
        [ "$status" -eq 0 ]
        [ "$output" = done ]
        # a peer that accepts TCP but never speaks SSH: the handshake times out
        python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' > "$T/mute.port" &
        BG_PIDS=$!
        for _ in $(seq 50); do [ -s "$T/mute.port" ] && break; sleep 0.1; done
        local start=$SECONDS
        run probe --timeout 2 "root@127.0.0.1:$(cat "$T/mute.port")" 'echo ran'
        no_connection
        [[ "$output" == *"handshake"* ]]
        [ $((SECONDS - start)) -lt 10 ]
        kill "$BG_PIDS"
        # a server that stops mid-command: its session process is stopped
        probe --timeout 6 --keepalive 2 "$SSHD_DEST" 'echo started; sleep 25; echo late' > "$T/out" 2>&1 &
        local p=$!
        for _ in $(seq 50); do grep -q started "$T/out" && break; sleep 0.1; done
        # every process under the listening sshd: the session's monitor,
        # its network process and the command
        STOPPED=$(ps -e -o pid=,ppid= | awk -v root="$SSHD_PID" '
                { parent[$1] = $2 }
                END { for (p in parent) { q = p; while (q in parent && q != root) q = parent[q]
                                          if (q == root && p != root) print p } }')
        [ -n "$STOPPED" ]
        kill -STOP $STOPPED
        start=$SECONDS
        local rc=0
        wait "$p" || rc=$?
        [ "$rc" -eq 255 ]
        [ $((SECONDS - start)) -lt 15 ]
        grep -q 'no answer for 6 s' "$T/out"
        kill -CONT $STOPPED
        kill $STOPPED 2>/dev/null || true
        STOPPED=
}
