#!/usr/bin/env bats
# serve.bats — `berth serve --stdio`, the far end of a remote repository,
# driven over pipes by build/tests/wire-client (one request a script line,
# one reply a printed line) and once through a real sshd.

load lib

setup() {
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export BERTH_REPO="$T/repo"
        export BERTH_CONFIG=/dev/null
        export BERTH_LOG_LEVEL=notice
        unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
        WIRE=${WIRE_CLIENT:-$(dirname "$(readlink -f "$BERTH")")/tests/wire-client}
}

# wire ARGS... < SCRIPT: a serve with ARGS, talked to with SCRIPT; its
# stderr (never stdout) goes to $T/stderr
wire() { timeout -k 5 60 "$WIRE" "$BERTH" serve --stdio "$@" 2>>"$T/stderr"; }

# make_repo DIR NAME: a repository with one snapshot of a small tree; its id in $SNAP
make_repo() {
        mkdir -p "$T/src-$2"
        head -c 300000 /dev/urandom > "$T/src-$2/rand.bin"
        seq 1 30000 > "$T/src-$2/seq.txt"
        printf 'small file %s\n' "$2" > "$T/src-$2/small"
        berth -r "$1" init -q
        SNAP=$(berth -r "$1" backup --path "$T/src-$2" --name "$2" | tail -n 1)
        [[ "$SNAP" =~ ^[0-9a-f]{64}$ ]]
}

pack_of() { (cd "$1" && ls packs/*/* | head -n 1); }

no_temp_files() { [ -z "$(ls -A "$1/tmp")" ]; }

@test "serve: handshake, OPEN, then LIST, STAT and GET give the repository's own bytes" {
        make_repo "$T/r" a
        pack=$(pack_of "$T/r")
        size=$(stat -c %s "$T/r/$pack")
        run wire <<EOF
hello
open $T/r read
list -
stat $pack
getall $pack $T/got.pack
get $pack 8 100 $T/part
get $pack $size 10 $T/empty
getall snapshots/$SNAP $T/got.snap
getall config $T/got.config
stat packs/00/nothing
stat catalog.db
bye
EOF
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "${lines[0]}" == "WELCOME 1 0" ]]
        [[ "${lines[1]}" == "OPENED $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/r/config") $(stat -c %s "$T/r/config")" ]]
        [[ "$output" == *$'\nconfig '$(stat -c %s "$T/r/config")$'\n'* ]]
        [[ "$output" == *$'\n'"$pack $size"$'\n'* ]]
        [[ "$output" == *$'\n'"snapshots/$SNAP "* ]]
        [[ "$output" != *"catalog.db "* && "$output" != *"lock "* && "$output" != *"tmp/"* ]]
        [[ "$output" == *$'\nEND\n'"SIZE $size"$'\n'"DATA $size"$'\nDATA 100\nDATA 0\n'* ]]
        cmp "$T/got.pack" "$T/r/$pack"
        cmp "$T/got.snap" "$T/r/snapshots/$SNAP"
        cmp "$T/got.config" "$T/r/config"
        cmp "$T/part" <(tail -c +9 "$T/r/$pack" | head -c 100)
        [ ! -s "$T/empty" ]
        [[ "$output" == *$'\nERROR 2 '* ]]             # ENOENT
        [[ "$output" == *$'\nERROR 22 not a repository object\nOK\nexit 0' ]]
}

@test "serve: requests before OPEN are refused, and the version is negotiated" {
        make_repo "$T/r" a
        run wire <<EOF
hello 1 7
stat config
open $T/r read
open $T/r read
close
EOF
        echo "$output"
        [ "${lines[0]}" = "WELCOME 1 0" ]
        [[ "${lines[1]}" == "ERROR 22 OPEN a repository first" ]]
        [[ "${lines[2]}" == "OPENED "* ]]
        [[ "${lines[3]}" == "ERROR 22 "* ]]
        [ "${lines[4]}" = EOF ]
        [ "${lines[5]}" = "exit 0" ]

        run wire <<EOF
hello 2 9
EOF
        echo "$output"
        [[ "${lines[0]}" == "ERROR 10009 "* ]]
        [ "${lines[1]}" = "exit 1" ]
}

@test "serve: OPEN takes the repository's lock for the whole connection" {
        make_repo "$T/r" a
        # a writer that holds its connection open for a while
        { printf 'hello\nopen %s write\n' "$T/r"; sleep 4; printf 'bye\n'; } | wire > "$T/first" &
        BG_PIDS="$!"
        for _ in $(seq 50); do grep -q OPENED "$T/first" 2>/dev/null && break; sleep 0.1; done
        grep -q OPENED "$T/first"
        run wire <<EOF
hello
open $T/r write 0
open $T/r read
bye
EOF
        echo "$output"
        [[ "${lines[1]}" == "ERROR 10002 "* ]]     # BERTH_ELOCKED
        [[ "${lines[2]}" == "OPENED "* ]]          # readers go alongside a writer
        wait "$BG_PIDS"
        BG_PIDS=
        [ "$(cat "$T/first")" = "WELCOME 1 0
$(sed -n 2p "$T/first")
OK
exit 0" ]
        # released at BYE
        run wire <<EOF
hello
open $T/r maintenance 0
bye
EOF
        [[ "${lines[1]}" == "OPENED "* ]]
}

@test "serve: a valid pack PUT from another repository lands; with its snapshot and ANNOUNCE it is restorable" {
        make_repo "$T/a" a
        berth -r "$T/b" init -q
        pack=$(pack_of "$T/a")
        small=$(sha256sum < "$T/src-a/small" | cut -c1-64)
        run wire <<EOF
hello
open $T/b write
have $small
put $pack $T/a/$pack frame 65536
have $small
put snapshots/$SNAP $T/a/snapshots/$SNAP create
announce $SNAP
bye
EOF
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$output" = "WELCOME 1 0
$(sed -n 2p <<<"$output")
LACK 1
OK
LACK 0
OK
OK
OK
exit 0" ]
        cmp "$T/a/$pack" "$T/b/$pack"
        no_temp_files "$T/b"
        run berth -r "$T/b" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        run berth -r "$T/b" restore "$SNAP" --target "$T/out"
        [ "$status" -eq 0 ]
        diff -r "$T/src-a" "$T/out"

        # a snapshot whose pack was not stored is not announced
        make_repo "$T/e" e
        berth -r "$T/f" init -q
        run wire <<EOF
hello
open $T/f write
announce $SNAP
put snapshots/$SNAP $T/e/snapshots/$SNAP
announce $SNAP
bye
EOF
        echo "$output"
        [[ "${lines[2]}" == "ERROR 10004 snapshot $SNAP was not stored" ]]
        [ "${lines[3]}" = OK ]
        [[ "${lines[4]}" == "ERROR 10001 snapshot ${SNAP:0:12}: "*"not stored" ]]
        [ -z "$(berth -r "$T/f" snapshots -q)" ]

        # a pack alone, indexed by a catalog rebuild
        make_repo "$T/c" c
        berth -r "$T/d" init -q
        pack=$(pack_of "$T/c")
        printf 'hello\nopen %s write\nput %s %s\nbye\n' "$T/d" "$pack" "$T/c/$pack" | wire >/dev/null
        cmp "$T/c/$pack" "$T/d/$pack"
        berth -r "$T/d" catalog rebuild
        run berth -r "$T/d" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "serve: a pack with one flipped byte, a wrong SHA-256 or short data is refused and leaves nothing" {
        make_repo "$T/a" a
        berth -r "$T/b" init -q
        pack=$(pack_of "$T/a")
        cp "$T/a/$pack" "$T/bad"
        # a byte inside the first chunk: the trailer, and so the name, still match
        printf '\xff' | dd of="$T/bad" bs=1 seek=1000 conv=notrunc 2>/dev/null
        ! cmp -s "$T/bad" "$T/a/$pack"
        # a pack whose name is not its trailer's hash
        other=packs/00/00$(printf '0%.0s' {1..62})
        run wire <<EOF
hello
open $T/b write
put $pack $T/bad
put $pack $T/a/$pack badsha
put $pack $T/a/$pack short
put $other $T/a/$pack
put snapshots/$SNAP $T/a/snapshots/$SNAP short
stat $pack
bye
EOF
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "${lines[2]}" == "ERROR 10001 pack $pack: chunk "*" does not match its id" ]]
        [[ "${lines[3]}" == "ERROR 10001 "*"SHA-256"* ]]
        [[ "${lines[4]}" == "ERROR 10001 "*"bytes arrived"* ]]
        [[ "${lines[5]}" == "ERROR 10001 "*"not the hash of its trailer"* ]]
        [[ "${lines[6]}" == "ERROR 10001 "* ]]
        [[ "${lines[7]}" == "ERROR 2 "* ]]
        [ -z "$(ls -A "$T/b/packs")" ] && [ -z "$(ls -A "$T/b/snapshots")" ]
        no_temp_files "$T/b"

        # more data than announced: a protocol violation, the connection ends
        run wire <<EOF
hello
open $T/b write
put $pack $T/a/$pack extra
stat config
EOF
        echo "$output"
        [[ "${lines[2]}" == "ERROR 10009 PUT_DATA beyond the announced size" ]]
        [[ "$output" == *"exit 1" ]]
        [ -z "$(ls -A "$T/b/packs")" ]
        no_temp_files "$T/b"
}

@test "serve --append-only: no DELETE, no maintenance, no rewrite; an identical re-PUT is fine" {
        make_repo "$T/a" a
        pack=$(pack_of "$T/a")
        cp "$T/a/config" "$T/config.orig"
        printf '{"not": "the config"}\n' > "$T/other"
        run wire --append-only <<EOF
hello
open $T/a maintenance
open $T/a write
delete $pack
put $pack $T/a/$pack
put config $T/other
put config $T/config.orig
put config $T/config.orig create
bye
EOF
        echo "$output"
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = "WELCOME 1 1" ]
        [[ "${lines[1]}" == "ERROR 1 "*"append-only"* ]]
        [[ "${lines[2]}" == "OPENED "* ]]
        [[ "${lines[3]}" == "ERROR 1 "*"append-only"* ]]
        [ "${lines[4]}" = OK ]
        [[ "${lines[5]}" == "ERROR 1 config exists with other content, and this server is append-only" ]]
        [ "${lines[6]}" = OK ]
        [[ "${lines[7]}" == "ERROR 17 config exists" ]]
        [ -f "$T/a/$pack" ]
        cmp "$T/a/config" "$T/config.orig"

        # without --append-only the DELETE goes through in maintenance mode;
        # a different config is still not replaced
        run wire <<EOF
hello
open $T/a maintenance
put config $T/other
delete $pack
delete $pack
delete catalog.db
bye
EOF
        echo "$output"
        [[ "${lines[2]}" == "ERROR 17 config exists with other content" ]]
        [ "${lines[3]}" = OK ]
        [[ "${lines[4]}" == "ERROR 2 "* ]]
        [[ "${lines[5]}" == "ERROR 22 "* ]]
        [ ! -e "$T/a/$pack" ] && [ -f "$T/a/catalog.db" ]
        cmp "$T/a/config" "$T/config.orig"
}

@test "serve --restrict-to-path: repositories outside DIR are refused, through symlinks and '..' too" {
        mkdir -p "$T/allowed"
        make_repo "$T/allowed/r" a
        make_repo "$T/outside" b
        ln -s "$T/outside" "$T/allowed/link"
        ln -s "$T/allowed" "$T/via-link"
        run wire --restrict-to-path "$T/allowed" <<EOF
hello
open $T/outside read
open $T/allowed/link read
open $T/allowed/../outside read
open $T/allowed/r/../../outside read
open $T/nowhere read
open $T/via-link/r read
bye
EOF
        echo "$output"
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = "WELCOME 1 2" ]
        for i in 1 2 3 4; do [[ "${lines[$i]}" == "ERROR 13 "*"outside the directories"* ]]; done
        [[ "${lines[5]}" == "ERROR 2 "* ]]
        [[ "${lines[6]}" == "OPENED "* ]]
        [ "${lines[7]}" = OK ]
        # a directory that is not a repository is not one, even when allowed
        run wire --restrict-to-path "$T" <<EOF
hello
open $T/allowed read
EOF
        [[ "${lines[1]}" == "ERROR 10003 "* ]]
        [ ! -e "$T/allowed/config" ]
}

@test "serve: an oversized frame or garbage before HELLO ends the connection with an error, writing nothing" {
        make_repo "$T/r" a
        before=$(cd "$T/r" && find . -type f -newer config -printf '%p %s\n' | sort; md5sum catalog.db)
        run wire <<EOF
raw ffffffff01000000
read
EOF
        echo "$output"
        [[ "${lines[0]}" == "ERROR 10009 frame length "*"out of bounds"* ]]
        [ "${lines[1]}" = "exit 1" ]
        grep -q "berth: error: frame length 4294967295 out of bounds" "$T/stderr"

        run wire <<EOF
hello
raw 0400000001
read
EOF
        echo "$output"
        [[ "${lines[1]}" == "ERROR 10009 "* ]]
        [ "${lines[2]}" = "exit 1" ]

        # a valid OPEN frame before HELLO
        run wire <<EOF
frame 0x10 5 000000000000000000
read
EOF
        echo "$output"
        [[ "${lines[0]}" == "ERROR 10009 "* ]]
        [ "${lines[1]}" = "exit 1" ]

        run wire <<EOF
raw 474554202f20485454502f312e310d0a0d0a
read
EOF
        echo "$output"
        [[ "${lines[0]}" == "ERROR 10009 "* ]]
        [[ "$output" == *"exit 1" ]]

        # a second HELLO, and a server's message sent by a client
        run wire <<EOF
hello
hello
EOF
        [[ "${lines[1]}" == "ERROR 10009 a second HELLO" ]]
        run wire <<EOF
hello
open $T/r read
frame 0x83 9
read
EOF
        [[ "${lines[2]}" == "ERROR 10009 "* ]]
        [[ "$output" == *"exit 1" ]]
        after=$(cd "$T/r" && find . -type f -newer config -printf '%p %s\n' | sort; md5sum catalog.db)
        [ "$before" = "$after" ]
        no_temp_files "$T/r"
}

@test "serve: HAVE answers LACK for exactly the chunks the repository does not hold" {
        make_repo "$T/r" a
        have=$(sha256sum < "$T/src-a/small" | cut -c1-64)
        lack=$(printf 'not stored anywhere' | sha256sum | cut -c1-64)
        run wire <<EOF
hello
have $lack
open $T/r read
have $have $lack $have $lack $lack $have $have $have $lack
bye
EOF
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "${lines[1]}" == "ERROR 22 "* ]]
        [ "${lines[3]}" = "LACK 010110001" ]
}

@test "serve: the handshake works over a real SSH channel" {
        command -v /usr/sbin/sshd >/dev/null || skip "openssh-server is not installed"
        load sshd
        export HOME=$T/home
        mkdir -p "$HOME"
        unset SSH_AUTH_SOCK SSH_AGENT_PID SSHD_PORT SSHD_EXTRA
        sshd_up "$T/sshd"
        sshd_known_line ed25519 > "$T/kh"
        probe=$(dirname "$(readlink -f "$BERTH")")/tests/ssh-probe
        # HELLO (versions 1..1, no software string), then BYE
        printf '\x16\x00\x00\x00\x01\x00\x00\x00\x00BERTHWIRE\x01\x00\x01\x00\x00\x00\x00\x00\x05\x00\x00\x00\x1f\x01\x00\x00\x00' > "$T/in"
        timeout -k 5 30 "$probe" -i "$SSHD_USER_KEY" --known-hosts "$T/kh" --stdin "$SSHD_DEST" \
                "$BERTH serve --stdio" < "$T/in" > "$T/out" || { sshd_down; false; }
        sshd_down
        grep -q BERTHWIRE "$T/out"
        # WELCOME ends with capabilities 0; then OK (length 5, type 0x83, tag 1)
        [[ "$(xxd -p "$T/out" | tr -d '\n')" == *0500000083010000000000000000 || "$(xxd -p "$T/out" | tr -d '\n')" == *050000008301000000 ]]
}
