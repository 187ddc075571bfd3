#!/usr/bin/env bats
# Finding and getting things back: snapshots, ls, find, diff, cat, export,
# import, catalog rebuild.

load lib

# two snapshots of "vol": v1, then v2 with one file changed, one removed,
# one added and one chmod
two_snapshots() {
        make_tree "$T/src"
        echo "config v1" > "$T/src/sub/app.conf"
        berth init > /dev/null
        ID1=$(berth backup --path "$T/src" --name vol | tail -n 1)
        echo "config v2" > "$T/src/sub/app.conf"
        rm "$T/src/link"
        echo new > "$T/src/added.txt"
        chmod 0600 "$T/src/rand.bin"
        ID2=$(berth backup --path "$T/src" --name vol | tail -n 1)
}

@test "snapshots shows host, size, added bytes and status; --json has stable fields" {
        two_snapshots
        run berth snapshots
        [ "$status" -eq 0 ]
        [[ "${lines[0]}" == *ID*NAME*HOST*TIME*FILES*SIZE*ADDED*STATUS* ]]
        [[ "$output" == *"${ID1:0:12}"*"vol"*"$(hostname)"*complete* ]]
        run berth --json snapshots vol
        python3 - "$output" <<'EOF'
import json, sys
snaps = json.loads(sys.argv[1])
assert len(snaps) == 2
for k in ["id", "short_id", "name", "host", "source", "time", "started_ns", "finished_ns", "status",
          "files", "dirs", "bytes", "files_read", "files_reused", "bytes_read", "bytes_added",
          "warnings", "parent", "meta"]:
    assert k in snaps[0], k
assert snaps[1]["parent"] == snaps[0]["id"]
EOF
}

@test "ls lists a directory like ls -l, and a file by itself" {
        two_snapshots
        run berth ls "$ID1"
        [ "$status" -eq 0 ]
        [[ "$output" == *"sub/"* ]] && [[ "$output" == *"link"* ]]
        run berth ls vol sub --long
        [ "$status" -eq 0 ]
        [[ "$output" == *"drwxr-xr-x"* ]] || [[ "$output" == *"drwx------"* ]]
        [[ "$output" == *"up-link -> ../seq.txt"* ]]
        [[ "$output" == *"app.conf"* ]]
        run berth ls vol /rand.bin --long
        [[ "$output" == "-rwsr-xr-x"* ]] || [[ "$output" == "-rw-------"* ]]
        [ "$(echo "$output" | wc -l)" -eq 1 ]
        run berth --json ls vol sub
        [ "$(echo "$output" | json_get '[0]["path"]')" = "sub/app.conf" ]
        run berth ls vol no/such
        [ "$status" -eq 1 ]
        [[ "$output" == *"has no path 'no/such'"* ]]
        # v1 still has the removed link, v2 does not
        run berth ls "$ID1"
        [[ "$output" == *$'\nlink\n'* ]]
        run berth ls "$ID2"
        [[ "$output" != *$'\nlink\n'* ]]
}

@test "find names every snapshot and path matching a glob, newest first" {
        two_snapshots
        run berth find '*.conf'
        [ "$status" -eq 0 ]
        [ "${#lines[@]}" -eq 2 ]
        [[ "${lines[0]}" == "${ID2:0:12}"*"sub/app.conf" ]]
        [[ "${lines[1]}" == "${ID1:0:12}"*"sub/app.conf" ]]
        run berth find 'sub/*.txt'
        [[ "$output" == *"sub/copy.txt"* ]]
        run berth find added.txt
        [ "${#lines[@]}" -eq 1 ]
        run berth --json find '*.conf' --name vol
        [ "$(echo "${lines[0]}" | json_get '["snapshot"]')" = "$ID2" ]
        run berth find '*.conf' --name other
        [ "$status" -eq 0 ]
        [[ "$output" == *"no path matches '*.conf' in snapshots of other"* ]]
}

@test "diff reports added, removed, modified and metadata-only changes" {
        two_snapshots
        run berth diff "$ID1" "$ID2"
        [ "$status" -eq 0 ]
        [[ "$output" == *"+ added.txt"* ]]
        [[ "$output" == *"- link"* ]]
        [[ "$output" == *"M sub/app.conf"* ]]
        [[ "$output" == *"m rand.bin"* ]]
        [[ "$output" == *"1 added, 1 removed"* ]]
        [[ "$output" != *"seq.txt"* ]]
        run berth --json diff "$ID1" "$ID2"
        [ "$(echo "$output" | json_get '["added"]')" -eq 1 ]
        [ "$(echo "$output" | json_get '["removed"]')" -eq 1 ]
        # identical snapshots: nothing
        run berth diff "$ID2" "$ID2"
        [[ "$output" == *"0 added, 0 removed, 0 modified"* ]]
}

@test "cat writes one file's bytes; hard links and sparse files work; directories are refused" {
        two_snapshots
        berth cat "$ID1" sub/app.conf > "$T/app1"
        [ "$(cat "$T/app1")" = "config v1" ]
        berth cat vol /seq.txt | cmp - "$T/src/seq.txt"
        berth cat vol sub/hard2.txt | cmp - "$T/src/seq.txt"
        berth cat vol sparse | cmp - "$T/src/sparse"
        run berth cat vol sub
        [ "$status" -eq 1 ]
        [[ "$output" == *"is a directory"* ]]
        run berth cat vol nope
        [ "$status" -eq 1 ]
        [[ "$output" == *"has no path 'nope'"* ]]
}

@test "export is read by GNU tar and bsdtar into the same tree as restore" {
        two_snapshots
        berth restore vol --target "$T/restored"
        berth export vol -o "$T/vol.tar"
        mkdir "$T/gnu" "$T/bsd"
        tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf "$T/vol.tar" -C "$T/gnu" 2> "$T/gnu.err"
        # GNU tar has no chattr flags (bsdtar does)
        run python3 "$TREECMP" --no-fflags "$T/restored" "$T/gnu"
        echo "$output"
        [ "$status" -eq 0 ]
        bsdtar -xpf "$T/vol.tar" -C "$T/bsd"
        # bsdtar does not set the time of the directory it extracts into
        run python3 "$TREECMP" --no-root-times "$T/restored" "$T/bsd"
        echo "$output"
        [ "$status" -eq 0 ]
        # zstd, to a pipe
        berth export vol --zstd | zstd -dc | tar -tf - | grep -qx 'sub/app.conf'
        # the sparse file stays sparse in the tar
        [ "$(stat -c %s "$T/vol.tar")" -lt 20000000 ]
}

@test "export streams: a snapshot larger than the free space exports to a pipe" {
        mkdir "$T/src" "$T/small"
        head -c 60000000 /dev/urandom > "$T/src/big"
        berth init
        berth backup --path "$T/src" --name big > /dev/null
        mount -t tmpfs -o size=16m tmpfs "$T/small"
        # the working directory is on a 16 MiB filesystem; the 60 MB tar only passes through
        (cd "$T/small" && "$BERTH" export big | tar -xOf - big) | cmp - "$T/src/big"
        umount "$T/small"
}

@test "restore, export, import, restore gives an identical tree" {
        make_tree "$T/src"
        berth init
        berth backup --path "$T/src" --name orig > /dev/null
        berth restore orig --target "$T/r1"
        berth export orig -o "$T/orig.tar.zst"
        run berth import --name again "$T/orig.tar.zst"
        [ "$status" -eq 0 ]
        [[ "$(last_line)" =~ ^[0-9a-f]{64}$ ]]
        # everything was already in the repository
        [[ "$output" == *"added 0 B"* ]] || [[ "$output" =~ added\ [0-9.]+\ (B|KiB)\ to ]]
        berth restore again --target "$T/r2"
        run python3 "$TREECMP" "$T/r1" "$T/r2"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "import takes a tar.gz from another tool, or stdin" {
        mkdir -p "$T/vol/data/sub"
        seq 1 10000 > "$T/vol/data/numbers"
        echo hi > "$T/vol/data/sub/hello"
        ln "$T/vol/data/numbers" "$T/vol/data/sub/numbers-link"
        # as a tar-based volume backup would: tar czf of the volume's directory
        tar czf "$T/vol.tgz" -C "$T/vol/data" .
        berth init
        run berth import --name fromtar "$T/vol.tgz"
        [ "$status" -eq 0 ]
        berth cat fromtar sub/hello | grep -qx hi
        berth cat fromtar sub/numbers-link | cmp - "$T/vol/data/numbers"
        berth restore fromtar --target "$T/out"
        [ "$(stat -c %i "$T/out/numbers")" = "$(stat -c %i "$T/out/sub/numbers-link")" ]
        # stdin, bz2 of a different shape (no directory entries at all)
        (cd "$T/vol/data" && tar cjf - numbers sub/hello) | berth import --name piped -
        run berth ls piped sub
        [[ "$output" == *hello* ]]
        run berth import --name junk /etc/hostname
        [ "$status" -eq 1 ]
        [[ "$output" == *"cannot read the archive"* ]]
}

@test "import refuses hostile archives, naming the entry, and records nothing" {
        berth init
        python3 - "$T" <<'EOF'
import io, sys, tarfile
d = sys.argv[1]
def mk(name, members):
    with tarfile.open(f"{d}/{name}.tar", "w") as t:
        for path, kind, arg in members:
            ti = tarfile.TarInfo(path)
            if kind == "file":
                ti.size = len(arg); t.addfile(ti, io.BytesIO(arg.encode()))
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE; ti.linkname = arg; t.addfile(ti)
            elif kind == "hard":
                ti.type = tarfile.LNKTYPE; ti.linkname = arg; t.addfile(ti)
mk("dotdot", [("ok", "file", "x"), ("../evil", "file", "pwned")])
mk("abs", [("/etc/evil", "file", "pwned")])
mk("through", [("etc", "sym", "/etc"), ("etc/passwd", "file", "pwned")])
mk("hardout", [("h", "hard", "/etc/passwd")])
mk("hardmissing", [("h", "hard", "nothere")])
EOF
        check() {
                run berth import --name h "$T/$1.tar"
                echo "$output"
                [ "$status" -eq 1 ]
                [[ "$output" == *"refusing archive entry '$2'"* ]]
        }
        check dotdot ../evil
        check abs /etc/evil
        check hardout h
        check hardmissing h
        run berth import --name h "$T/through.tar"
        [ "$status" -eq 1 ]
        [[ "$output" == *"'etc/passwd': it is inside a path that is not a directory"* ]]
        [ "$(berth --json snapshots | json_get '.__len__()')" -eq 0 ]
        [ ! -e /etc/evil ]
}

@test "catalog rebuild gives back every snapshot, and ls/find/restore work as before" {
        two_snapshots
        berth ls vol sub --long > "$T/ls-before"
        berth find '*' > "$T/find-before"
        berth --json snapshots > "$T/snaps-before"
        rm -f "$BERTH_REPO"/catalog.db*
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [[ "$output" == *"2 snapshots"* ]]
        berth ls vol sub --long | diff - "$T/ls-before"
        berth find '*' | diff - "$T/find-before"
        berth --json snapshots | diff - "$T/snaps-before"
        berth restore "$ID1" --target "$T/out"
        [ "$(cat "$T/out/sub/app.conf")" = "config v1" ]
        # a damaged catalog file is replaced as well
        echo garbage > "$BERTH_REPO/catalog.db"
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        berth find '*' | diff - "$T/find-before"
}

@test "a reference matching nothing or several snapshots lists the candidates" {
        two_snapshots
        run berth ls nosuchname
        [ "$status" -eq 1 ]
        [[ "$output" == *"snapshot names here: vol"* ]]
        # make an ambiguous 4-digit prefix by finding one among many snapshots
        for i in $(seq 1 60); do
                echo "$i" > "$T/src/counter"
                berth backup --path "$T/src" --name vol > /dev/null
                p=$(berth --json snapshots | python3 -c '
import json,sys,collections
c=collections.Counter(s["id"][:4] for s in json.load(sys.stdin))
print(next((p for p,n in c.items() if n>1), ""))')
                [ -n "$p" ] && break
        done
        if [ -n "$p" ]; then
                run berth ls "$p"
                [ "$status" -eq 1 ]
                [[ "$output" == *"'$p' matches 2 snapshots"* ]]
        fi
}

@test "every new command has --help" {
        for c in ls find diff cat export import catalog; do
                run berth "$c" --help
                [ "$status" -eq 0 ]
                [[ "$output" == Usage:* ]]
        done
}
