# lib.bash — shared setup for the end-to-end tests.
#
# Each test gets its own directory $T (removed when the test passed, kept
# and printed when it failed) and its own repository $BERTH_REPO.

setup() {
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export BERTH_REPO="$T/repo"
        export BERTH_CONFIG=/dev/null
        export BERTH_LOG_LEVEL=notice
        unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
        TREECMP="$BATS_TEST_DIRNAME/treecmp.py"
}

teardown() {
        # Reap background helpers a test left (by pid, never by name).
        for p in ${BG_PIDS:-}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
        if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
                chattr -R -i -a "$T" 2>/dev/null || true
                umount_all "$T"
                rm -rf "$T"
        else
                echo "# kept $T for inspection" >&3
        fi
}

umount_all() {
        { grep -o " $1[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r |
                while read -r m; do umount "$m" 2>/dev/null || true; done
}

berth() { "$BERTH" "$@"; }

# The last line of output: backup prints the snapshot id there.
last_line() { printf '%s\n' "$output" | tail -n 1; }

# make_tree DIR: a tree with every kind of entry Berth must restore exactly.
make_tree() {
        local d=$1
        mkdir -p "$d/sub/deeper" "$d/empty" "$d/sticky"
        head -c 3000000 /dev/urandom > "$d/rand.bin"
        seq 1 200000 > "$d/seq.txt"
        cp "$d/seq.txt" "$d/sub/copy.txt"
        ln "$d/seq.txt" "$d/hard.txt"
        ln "$d/seq.txt" "$d/sub/hard2.txt"
        ln -s seq.txt "$d/link"
        ln -s /nonexistent/target "$d/dangling"
        ln -s ../seq.txt "$d/sub/up-link"
        mkfifo "$d/fifo"
        mknod "$d/null-dev" c 1 3
        mknod "$d/blk-dev" b 7 200
        printf 'x' > "$d/setuid"
        chmod 4755 "$d/setuid"
        printf 'y' > "$d/setgid"
        chmod 2750 "$d/setgid"
        chmod 1777 "$d/sticky"
        chmod 0700 "$d/sub/deeper"
        chown 12345:54321 "$d/seq.txt"
        chown 777:0 "$d/sub"
        touch -h -d '2001-02-03 04:05:06.123456789' "$d/sub/copy.txt" "$d/link"
        setfattr -n user.color -v blue "$d/seq.txt"
        setfattr -n user.bin -v 0x00ff00ff "$d/rand.bin"
        setfacl -m u:4242:r,g:4343:rw "$d/sub/copy.txt"
        setfacl -d -m g:99:rx "$d/sub"
        truncate -s 64M "$d/sparse"
        printf 'hello' | dd of="$d/sparse" bs=1 seek=1000000 conv=notrunc 2>/dev/null
        truncate -s 10M "$d/all-hole"
        : > "$d/empty-file"
        touch "$d/$(printf 'latin1-\xe9t\xe9')" "$d/$(printf 'sp ace\ttab')" "$d/-dash"
        printf 'frozen' > "$d/immutable"
        chattr +i "$d/immutable"
        printf 'log' > "$d/append-only"
        chattr +a "$d/append-only"
        touch -d '1999-12-31 23:59:59.5' "$d/empty"
}

# repo_bytes: bytes under packs/ of the test repository
repo_bytes() { du -sb "$BERTH_REPO/packs" | cut -f1; }

json_get() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
