#!/usr/bin/env bats
# crypto.bats — encrypted repositories (berth init --encrypt): no plaintext
# in any byte of the repository, round trip, wrong passwords, tampering,
# several passwords, password sources, and a keyless `serve` end over SSH.

load lib
load sshd

bats_require_minimum_version 1.5.0

CANARY=zqxcanary7731

setup() {
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export BERTH_REPO="$T/repo" BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=notice
        unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED BERTH_PASSWORD BERTH_PASSWORD_FILE CREDENTIALS_DIRECTORY
        export BERTH_CACHE_DIR=$T/cache
        export BERTH_SCRYPT_N_LOG2=14 # a cheaper KDF for new keys in tests
        TREECMP="$BATS_TEST_DIRNAME/treecmp.py"
        printf 'correct horse battery\n' > "$T/pw"
        printf 'second password\n' > "$T/pw2"
        printf 'wrong password\n' > "$T/bad"
}

teardown() {
        for p in ${BG_PIDS:-}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
        [ -z "${SSHD_PID:-}" ] || sshd_down
        if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
                rm -rf "$T"
        else
                echo "# kept $T for inspection" >&3
        fi
}

b() { timeout -k 5 120 "$BERTH" "$@"; }

# canary_tree DIR: the canary in file names, directory names and contents
canary_tree() {
        mkdir -p "$1/dir-$CANARY/sub"
        printf 'secret %s line\n' "$CANARY" > "$1/dir-$CANARY/file-$CANARY.txt"
        for i in $(seq 1 2000); do echo "row $i $CANARY"; done > "$1/dir-$CANARY/sub/table.csv"
        head -c 2000000 /dev/urandom > "$1/rand.bin"
        printf '%s' "$CANARY" >> "$1/rand.bin"
        ln -s "target-$CANARY" "$1/link-$CANARY"
}

init_enc() {
        run b --password-file "$T/pw" init --encrypt
        [ "$status" -eq 0 ]
        [[ "$output" == *"encrypted"* ]]
}

sums() { (cd "$T/repo" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

flip_byte() { # FILE OFFSET
        python3 - "$1" "$2" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, 'r+b') as f:
    f.seek(off if off >= 0 else f.seek(0, 2) + off)
    c = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([c[0] ^ 0x10]))
PY
}

@test "crypto: no byte of the repository holds the canary (names, dirs, contents, catalog); round trip identical" {
        init_enc
        canary_tree "$T/src"
        run b --password-file "$T/pw" backup --path "$T/src" --name "vol-$CANARY"
        echo "$output"
        [ "$status" -eq 0 ]
        run b --password-file "$T/pw" tag --keep "vol-$CANARY@latest"
        [ "$status" -eq 0 ]
        [ "$(ls "$T/repo/keep" | wc -l)" -eq 1 ]
        run grep -r -a -l "$CANARY" "$T/repo"
        echo "$output"
        [ "$status" -eq 1 ]
        [ ! -e "$T/repo/catalog.db" ]
        # the catalog is a cache elsewhere, and it does hold the names
        [ -e "$BERTH_CACHE_DIR"/*/catalog.db ]
        grep -r -a -q "$CANARY" "$BERTH_CACHE_DIR"
        run b --password-file "$T/pw" restore "vol-$CANARY@latest" --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" "$T/src" "$T/out"
        run b --password-file "$T/pw" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "crypto: the catalog cache is rebuilt from the repository with the key when missing" {
        init_enc
        canary_tree "$T/src"
        b --password-file "$T/pw" backup --path "$T/src" --name v
        rm -rf "$BERTH_CACHE_DIR"
        run b --password-file "$T/pw" snapshots
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *" v "* ]]
        run b --password-file "$T/pw" restore v@latest --target "$T/out"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" "$T/src" "$T/out"
}

@test "crypto: a wrong password is refused with exit 1, a clear message, and nothing written" {
        init_enc
        canary_tree "$T/src"
        b --password-file "$T/pw" backup --path "$T/src" --name v
        before=$(sums)
        run b --password-file "$T/bad" backup --path "$T/src" --name v
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"wrong password for repository"*"no key in keys/ opens with it"* ]]
        rm -rf "$BERTH_CACHE_DIR"
        run b --password-file "$T/bad" snapshots
        [ "$status" -eq 1 ]
        [ "$(sums)" = "$before" ]
        # not even the local cache is made
        [ ! -e "$BERTH_CACHE_DIR" ]
}

# check --read-data reports damage (exit 5) and restore refuses
damage_refused() {
        run b --password-file "$T/pw" check --read-data
        echo "$output"
        [ "$status" -eq 5 ]
        run b --password-file "$T/pw" restore v@latest --target "$T/out"
        echo "$output"
        [ "$status" -ne 0 ]
}

@test "crypto: a flipped bit in a pack record, a pack trailer, a snapshot file, a key file is detected" {
        init_enc
        canary_tree "$T/src"
        b --password-file "$T/pw" backup --path "$T/src" --name v
        cp -a "$T/repo" "$T/clean"
        pack=$(find "$T/repo/packs" -type f | head -n 1)
        # a record: the first one starts after the 8-byte header
        flip_byte "$pack" 40
        damage_refused
        [ ! -e "$T/out/rand.bin" ] || ! cmp -s "$T/src/rand.bin" "$T/out/rand.bin" || false
        # a manifest (tree) record, found through the local catalog cache
        rm -rf "$T/repo" "$T/out" && cp -a "$T/clean" "$T/repo"
        read -r tpack toff < <(python3 - "$BERTH_CACHE_DIR"/*/catalog.db <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
h, off = db.execute("SELECT hex(p.hash), c.offset FROM chunks c JOIN packs p ON p.id = c.pack "
                    "WHERE c.flags & 2 LIMIT 1").fetchone()
print(h.lower(), off)
PY
)
        flip_byte "$T/repo/packs/${tpack:0:2}/$tpack" $((toff + 20))
        damage_refused
        # the trailer: inside the sealed unit before the 24-byte footer
        rm -rf "$T/repo" "$T/out" && cp -a "$T/clean" "$T/repo"
        flip_byte "$pack" -40
        run b --password-file "$T/pw" check --read-data
        echo "$output"
        [ "$status" -eq 5 ]
        # a snapshot file
        rm -rf "$T/repo" && cp -a "$T/clean" "$T/repo"
        snap=$(find "$T/repo/snapshots" -type f | head -n 1)
        flip_byte "$snap" 30
        run b --password-file "$T/pw" check --read-data
        echo "$output"
        [ "$status" -eq 5 ]
        [[ "$output" == *"damaged"* ]]
        # a key file: it no longer opens
        rm -rf "$T/repo" "$BERTH_CACHE_DIR" && cp -a "$T/clean" "$T/repo"
        key=$(find "$T/repo/keys" -type f | head -n 1)
        python3 - "$key" <<'PY'
import json, sys
p = sys.argv[1]
k = json.load(open(p))
w = k["wrapped"]
k["wrapped"] = w[:10] + ("0" if w[10] != "0" else "1") + w[11:]
json.dump(k, open(p, "w"))
PY
        run b --password-file "$T/pw" snapshots
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"no key in keys/ opens"* ]]
}

@test "crypto: a multi-chunk record is sealed as one unit: a flipped bit inside it names its chunks and files, restore refuses" {
        init_enc
        mkdir -p "$T/src"
        python3 - "$T/src" <<'PY'
import os, random, sys
random.seed(7)
for i in range(300):
    with open(os.path.join(sys.argv[1], "f%04d.txt" % i), "w") as f:
        for j in range(random.randint(20, 300)):
            f.write('{"id": %d, "name": "zqxcanary7731 %d", "status": "active", "n": %d}\n' % (j, i, random.randint(0, 99999)))
PY
        run b --password-file "$T/pw" backup --path "$T/src" --name v
        [ "$status" -eq 0 ]
        # a record of at least three chunks, found through the local catalog
        # cache: its sealed bytes hold no plaintext and no zstd frame magic
        read -r rpack roff rlen nchunks < <(python3 - "$BERTH_CACHE_DIR"/*/catalog.db <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
h, off, slen, n = db.execute("SELECT hex(p.hash), c.offset, c.stored_len, count(*) FROM chunks c "
                             "JOIN packs p ON p.id = c.pack WHERE c.flags & 2 = 0 "
                             "GROUP BY c.pack, c.offset HAVING count(*) >= 3 LIMIT 1").fetchone()
print(h.lower(), off, slen, n)
PY
)
        [ "$nchunks" -ge 3 ]
        pack="$T/repo/packs/${rpack:0:2}/$rpack"
        python3 - "$pack" "$roff" "$rlen" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()[int(sys.argv[2]):][:int(sys.argv[3])]
assert b[0] == 1, "a sealed record starts with the version byte"
assert b"zqxcanary7731" not in b and b"\x28\xb5\x2f\xfd" not in b[:16], "the record is not sealed"
PY
        flip_byte "$pack" $((roff + rlen / 2))
        run b --password-file "$T/pw" check --read-data
        echo "$output"
        [ "$status" -eq 5 ]
        # every chunk of the record is named, and the files that hold them
        [ "$(grep -c "is damaged" <<<"$output")" -ge "$nchunks" ]
        [[ "$output" == *"f0"*".txt"* ]]
        run b --password-file "$T/pw" restore v@latest --target "$T/out"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"damaged"* ]]
        for f in $(cd "$T/out" 2>/dev/null && find . -type f); do
                cmp "$T/src/$f" "$T/out/$f"
        done
}

@test "crypto: two passwords both open; remove one, the other still opens; the last and the current key are refused" {
        init_enc
        canary_tree "$T/src"
        b --password-file "$T/pw" backup --path "$T/src" --name v
        run b --password-file "$T/pw" key add --new-password-file "$T/pw2"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(ls "$T/repo/keys" | wc -l)" -eq 2 ]
        run b --password-file "$T/pw2" snapshots
        [ "$status" -eq 0 ]
        run b --password-file "$T/pw" --json key list
        echo "$output"
        [ "$status" -eq 0 ]
        first=$(printf '%s' "$output" | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["current"]][0])')
        second=$(printf '%s' "$output" | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if not k["current"]][0])')
        # the key in use is refused
        run b --password-file "$T/pw" key remove "$first"
        echo "$output"
        [ "$status" -eq 1 ]
        # remove the first password's key with the second password
        run b --password-file "$T/pw2" key remove "$first"
        echo "$output"
        [ "$status" -eq 0 ]
        run b --password-file "$T/pw" snapshots
        [ "$status" -eq 1 ]
        run b --password-file "$T/pw2" restore v@latest --target "$T/out"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" "$T/src" "$T/out"
        # the last key cannot go, with any password
        run b --password-file "$T/pw2" key remove "$second"
        echo "$output"
        [ "$status" -eq 1 ]
        [ "$(ls "$T/repo/keys" | wc -l)" -eq 1 ]
}

@test "crypto: key passwd replaces the password" {
        init_enc
        run b --password-file "$T/pw" key passwd --new-password-file "$T/pw2"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(ls "$T/repo/keys" | wc -l)" -eq 1 ]
        run b --password-file "$T/pw" snapshots
        [ "$status" -eq 1 ]
        run b --password-file "$T/pw2" snapshots
        [ "$status" -eq 0 ]
}

@test "crypto: the password from --password-command, BERTH_PASSWORD_FILE, the systemd credential, BERTH_PASSWORD" {
        init_enc
        run b --password-command "cat '$T/pw'" snapshots
        echo "$output"
        [ "$status" -eq 0 ]
        run b --password-command "false" snapshots
        [ "$status" -eq 1 ]
        BERTH_PASSWORD_FILE=$T/pw run b snapshots
        [ "$status" -eq 0 ]
        mkdir "$T/creds" && cp "$T/pw" "$T/creds/berth-password"
        CREDENTIALS_DIRECTORY=$T/creds run b snapshots
        [ "$status" -eq 0 ]
        BERTH_PASSWORD='correct horse battery' run b snapshots
        [ "$status" -eq 0 ]
        # the order: --password-file before the environment
        BERTH_PASSWORD_FILE=$T/bad run b --password-file "$T/pw" snapshots
        [ "$status" -eq 0 ]
        # no source and no terminal: a clear refusal
        run -0 true
        run setsid -w "$BERTH" snapshots < /dev/null
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"encrypted"* ]]
}

@test "crypto: init without --encrypt says the repository is not encrypted, and plain repositories work as before" {
        run b init
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"not encrypted"* ]]
        [ -e "$T/repo/catalog.db" ]
        canary_tree "$T/src"
        run b backup --path "$T/src" --name v
        [ "$status" -eq 0 ]
        run b restore v@latest --target "$T/out"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" "$T/src" "$T/out"
}

@test "crypto: backup over SSH to a serve end that holds no password, restore from it" {
        command -v /usr/sbin/sshd >/dev/null || skip "openssh-server is not installed"
        export HOME=$T/home
        mkdir -p "$HOME"
        unset SSH_AUTH_SOCK SSH_AGENT_PID
        init_enc
        sshd_up "$T/sshd"
        sshd_known_line ed25519 > "$T/kh"
        URL=ssh://root@127.0.0.1:$SSHD_PORT$T/repo
        rb() { timeout -k 5 120 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$T/kh" --remote-berth "$BERTH" "$@"; }
        canary_tree "$T/src"
        export BERTH_CACHE_DIR=$T/client-cache
        run rb --password-file "$T/pw" backup --path "$T/src" --name v
        echo "$output"
        [ "$status" -eq 0 ]
        run grep -r -a -l "$CANARY" "$T/repo"
        [ "$status" -eq 1 ]
        rm -rf "$T/client-cache"
        run rb --password-file "$T/pw" restore v@latest --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" "$T/src" "$T/out"
        run rb --password-file "$T/bad" snapshots
        [ "$status" -eq 1 ]
        # the far side can check what it stores without the key
        [ ! -e "$T/repo/catalog.db" ]
}

@test "crypto: forget --prune repacks an encrypted repository; survivors restore and check" {
        export BERTH_PASSWORD_FILE=$T/pw
        run b init --encrypt --pack-size 1M
        [ "$status" -eq 0 ]
        mkdir -p "$T/keep" "$T/mixed"
        head -c 1500000 /dev/urandom > "$T/keep/k.bin"
        for i in $(seq 1 60); do head -c 20000 /dev/urandom > "$T/mixed/$CANARY-$i"; done
        for i in $(seq 1 4 60); do cp -p "$T/mixed/$CANARY-$i" "$T/keep/"; done
        b backup --path "$T/mixed" --name mixed > /dev/null
        b backup --path "$T/keep" --name keep > /dev/null
        run b forget --keep-last 0 --name mixed
        echo "$output"
        [ "$status" -eq 0 ]
        before=$(du -sb "$T/repo/packs" | cut -f1)
        run b --json prune --max-unused 0
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(du -sb "$T/repo/packs" | cut -f1)" -lt "$before" ]
        run b restore keep@latest --target "$T/out"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" "$T/keep" "$T/out"
        run b check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        run grep -r -a -l "$CANARY" "$T/repo"
        [ "$status" -eq 1 ]
}
