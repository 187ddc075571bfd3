#!/usr/bin/env bats
# Issue 8, items 9, 10 and 13 (parts): symlinks are data in import as in
# backup, ACLs naming users and groups come back, names cannot forge log
# lines or drive the terminal, and far-future times do not overflow.

load lib

# mktar OUT.tar SPEC...: a tar from python's tarfile, each SPEC one of
#   file:PATH:TEXT  dir:PATH  sym:PATH:TARGET  hard:PATH:TARGET
mktar() {
        python3 - "$@" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for spec in sys.argv[2:]:
        kind, path, *rest = spec.split(":", 2)
        ti = tarfile.TarInfo(path)
        ti.mtime = 1700000000
        if kind == "file":
            data = rest[0].encode()
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
            continue
        ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
        if rest:
            ti.linkname = rest[0]
        t.addfile(ti)
EOF
}

@test "export, import and restore keep absolute, climbing and chained symlinks" {
        # the shape of a PostgreSQL data directory with a tablespace
        mkdir -p "$T/src/pg_tblspc" "$T/src/a/b/c" "$T/src/base"
        echo data > "$T/src/base/1"
        ln -s /srv/tablespace/one "$T/src/pg_tblspc/16384"
        ln -s /etc/passwd "$T/src/abs"
        ln -s ../../../../etc "$T/src/a/b/c/climb"
        ln -s climb "$T/src/a/b/c/link-to-link"
        ln -s ../../../abs "$T/src/a/b/c/to-abs"
        ln -s .. "$T/src/a/up"
        ln -s / "$T/src/root"
        berth init
        berth backup --path "$T/src" --name pg > /dev/null
        berth export pg -o "$T/pg.tar"
        run berth import --name again "$T/pg.tar"
        echo "$output"
        [ "$status" -eq 0 ]
        run berth restore again --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(readlink "$T/out/pg_tblspc/16384")" = /srv/tablespace/one ]
        [ "$(readlink "$T/out/a/b/c/climb")" = ../../../../etc ]
        # the old option is still accepted, as a no-op, and no longer documented
        run berth import --name flag --allow-absolute-symlinks "$T/pg.tar"
        [ "$status" -eq 0 ]
        run berth import --help
        [[ "$output" != *allow-absolute-symlinks* ]]
}

@test "import refuses entries below a symlink or a file, and hard links to anything but a file" {
        mkdir "$T/outside"
        berth init
        mktar "$T/through-abs.tar" "sym:d:$T/outside" "file:d/x:pwned"
        mktar "$T/through-rel.tar" "dir:a" "sym:a/d:../../../../../../../..$T/outside" "file:a/d/x:pwned"
        mktar "$T/through-deep.tar" "sym:d:$T/outside" "dir:d/sub" "file:d/sub/x:pwned"
        mktar "$T/through-file.tar" "file:f:plain" "file:f/x:pwned"
        mktar "$T/hard-below.tar" "sym:d:$T/outside" "file:f:data" "hard:d/h:f"
        mktar "$T/hard-to-link.tar" "file:f:data" "sym:f:$T/outside/x" "hard:h:f"
        mktar "$T/hard-to-dir.tar" "dir:d" "hard:h:d"
        check() {
                run berth import --name h "$T/$1.tar"
                echo "$output"
                [ "$status" -eq 1 ]
                [[ "$output" == *"refusing archive entry '$2'"* ]]
        }
        check through-abs d/x
        check through-rel a/d/x
        check through-deep d/sub
        check through-file f/x
        check hard-below d/h
        check hard-to-link h
        check hard-to-dir h
        [ "$(berth --json snapshots | json_get '.__len__()')" -eq 0 ]
        [ -z "$(ls -A "$T/outside")" ]
}

@test "a snapshot holding symlinks that point outside restores without writing outside" {
        mkdir "$T/outside"
        berth init
        # link-to-link chains and links that climb: each is only bytes
        mktar "$T/links.tar" "sym:d:$T/outside" "sym:e:d" "dir:sub" "sym:sub/up:../../../../../..$T/outside" \
                "file:sub/file:ok" "sym:sub/via:../e" "file:z:last"
        run berth import --name links "$T/links.tar"
        echo "$output"
        [ "$status" -eq 0 ]
        mkdir "$T/work"
        # run from a directory where the link targets resolve, to be sure
        cd "$T/work"
        run berth restore links --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(readlink "$T/out/d")" = "$T/outside" ]
        [ "$(readlink "$T/out/sub/via")" = ../e ]
        [ "$(cat "$T/out/sub/file")" = ok ]
        [ "$(cat "$T/out/z")" = last ]
        # a sub-tree is written inside its target, and a path through a
        # link matches nothing: never written through the link
        run berth restore links --target "$T/out2" --include sub
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(readlink "$T/out2/sub/up")" = "../../../../../..$T/outside" ]
        run berth restore links --target "$T/out3" --include d/x
        echo "$output"
        [ ! -e "$T/out3/d/x" ]
        [ -z "$(ls -A "$T/outside")" ]
        run berth export links -o "$T/again.tar"
        [ "$status" -eq 0 ]
        mkdir "$T/gnu"
        tar -xf "$T/again.tar" -C "$T/gnu"
        [ "$(readlink "$T/gnu/sub/up")" = "../../../../../..$T/outside" ]
        [ -z "$(ls -A "$T/outside")" ]
}

# acl_tree DIR: a file and a directory with named user and group entries
# (access and default), by names that exist in /etc/passwd and /etc/group.
acl_tree() {
        mkdir -p "$1/dir/sub"
        echo hi > "$1/file"
        echo there > "$1/dir/sub/inner"
        setfacl -m u:nobody:rw,u:daemon:r,g:nogroup:r,g:adm:rw "$1/file"
        setfacl -m u:nobody:rwx,g:nogroup:rx "$1/dir"
        setfacl -d -m u:nobody:rx,g:adm:rwx "$1/dir"
        setfacl -m u:daemon:rw "$1/dir/sub/inner"
}

acl_same() {
        local a b
        for p in file dir dir/sub dir/sub/inner; do
                a=$(cd "$1" && getfacl -n --omit-header "$p")
                b=$(cd "$2" && getfacl -n --omit-header "$p")
                if [ "$a" != "$b" ]; then
                        printf '%s differs:\n%s\n---\n%s\n' "$p" "$a" "$b"
                        return 1
                fi
        done
}

@test "ACLs naming users and groups are restored on files and directories" {
        acl_tree "$T/src"
        # the test needs named entries: getfacl shows names for these ids
        getfacl "$T/src/file" | grep -q '^user:nobody:rw-'
        berth init
        berth backup --path "$T/src" --name acl > /dev/null
        run berth restore acl --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" != *warning* ]]
        acl_same "$T/src" "$T/out"
        # the export's pax records carry the ids, so tar on a host without
        # these names restores them too
        berth export acl -o "$T/acl.tar"
        grep -a -q "SCHILY.acl.access=.*user:nobody:rw-:$(id -u nobody)" "$T/acl.tar"
        grep -a -q "SCHILY.acl.default=.*group:adm:rwx:$(getent group adm | cut -d: -f3)" "$T/acl.tar"
        mkdir "$T/gnu" "$T/bsd"
        tar --acls --numeric-owner -xpf "$T/acl.tar" -C "$T/gnu"
        acl_same "$T/src" "$T/gnu"
        bsdtar -xpf "$T/acl.tar" -C "$T/bsd"
        acl_same "$T/src" "$T/bsd"
        # and an import of it restores them as well
        berth import --name imported "$T/acl.tar" > /dev/null
        run berth restore imported --target "$T/out2"
        [ "$status" -eq 0 ]
        acl_same "$T/src" "$T/out2"
}

@test "ACLs that name users without ids (another tool's tar) are restored by name" {
        acl_tree "$T/src"
        python3 - "$T/names.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    d = tarfile.TarInfo("dir"); d.type = tarfile.DIRTYPE; d.mode = 0o775
    d.pax_headers = {"SCHILY.acl.access": "user::rwx,user:nobody:rwx,group::r-x,group:nogroup:r-x,mask::rwx,other::r-x",
                     "SCHILY.acl.default": "user::rwx,user:nobody:r-x,group::r-x,group:adm:rwx,mask::rwx,other::r-x"}
    t.addfile(d)
    f = tarfile.TarInfo("file"); f.size = 3; f.mode = 0o664
    f.pax_headers = {"SCHILY.acl.access": "user::rw-,user:nobody:rw-,user:daemon:r--,group::r--,group:nogroup:r--,group:adm:rw-,mask::rw-,other::r--"}
    t.addfile(f, io.BytesIO(b"hi\n"))
EOF
        berth init
        berth import --name names "$T/names.tar" > /dev/null
        run berth restore names --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" != *warning* ]]
        for p in file dir; do
                [ "$(cd "$T/src" && getfacl -n --omit-header "$p")" = "$(cd "$T/out" && getfacl -n --omit-header "$p")" ]
        done
}

@test "names with newlines and escape sequences cannot forge lines or reach the terminal raw" {
        forged=$'x\nberth: error: forged'
        esc=$'esc\e]0;owned\a\e[31mred'
        mkdir -p "$T/src/$forged"
        echo one > "$T/src/$forged/$forged"
        echo two > "$T/src/$esc"
        printf 'bad' > "$T/src/$(printf 'latin1-\xe9')"
        # a socket is skipped, with a debug line that names it
        python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/src/sock$forged"
        berth init
        BERTH_LOG_LEVEL=debug run berth backup --path "$T/src" --name v
        echo "$output"
        [ "$status" -eq 0 ]
        no_raw() {
                if printf '%s\n' "$output" | grep -q '^berth: error: forged'; then
                        echo "a forged line got through"
                        return 1
                fi
                if [[ "$output" == *$'\e'* || "$output" == *$'\a'* ]]; then
                        echo "a raw control character got through"
                        return 1
                fi
        }
        no_raw
        [[ "$output" == *"'sockx\\nberth: error: forged'"* ]]
        id1=$(last_line)
        # warnings of import (a path twice) and restore (an ACL naming a
        # user this host does not have) name the entry
        python3 - "$T/warn.tar" "$forged" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for i in range(2):
        ti = tarfile.TarInfo(sys.argv[2]); ti.size = 1
        ti.pax_headers = {"SCHILY.acl.access": "user::rw-,user:no-such-user-here:rw-,group::r--,mask::rw-,other::r--"}
        t.addfile(ti, io.BytesIO(b"y"))
EOF
        run berth import --name w "$T/warn.tar"
        echo "$output"
        [ "$status" -eq 0 ]
        no_raw
        [[ "$output" == *"'x\\nberth: error: forged': appears more than once"* ]]
        run berth restore w --target "$T/w"
        echo "$output"
        [ "$status" -eq 3 ]
        no_raw
        [[ "$output" == *"'x\\nberth: error: forged': restored, but"* ]]
        run berth ls v
        echo "$output"
        no_raw
        [[ "$output" == *'x\nberth: error: forged/'* ]]
        [[ "$output" == *'esc\e]0;owned\a\e[31mred'* ]]
        [[ "$output" == *'latin1-\xe9'* ]]
        run berth ls v --long "$forged"
        no_raw
        [[ "$output" == *'x\nberth: error: forged'* ]]
        run berth find '*forged*'
        no_raw
        [[ "$output" == *'x\nberth: error: forged/x\nberth: error: forged'* ]]
        echo three > "$T/src/$esc"
        rm -r "$T/src/$forged"
        id2=$(berth backup --path "$T/src" --name v | tail -n 1)
        run berth diff "$id1" "$id2"
        echo "$output"
        no_raw
        [[ "$output" == *'esc\e]0;owned\a\e[31mred'* ]]
        # errors name the entry escaped too
        python3 - "$T/evil.tar" "../$forged" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo(sys.argv[2]); ti.size = 1
    t.addfile(ti, io.BytesIO(b"y"))
EOF
        run berth import --name evil "$T/evil.tar"
        [ "$status" -eq 1 ]
        no_raw
        [[ "$output" == *"'../x\\nberth: error: forged'"* ]]
        # JSON stays JSON: the exact bytes, JSON-escaped
        run berth --json ls v
        [ "$status" -eq 0 ]
        printf '%s' "$output" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert any(e["name"]=="esc\x1b]0;owned\x07\x1b[31mred" for e in d), d'
}

@test "an entry with a far-future mtime imports, lists and restores without overflowing" {
        python3 - "$T/future.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name, mtime in (("future", 10**15), ("past", -10**15), ("normal", 1700000000)):
        ti = tarfile.TarInfo(name); ti.size = 1; ti.mtime = mtime
        t.addfile(ti, io.BytesIO(b"y"))
EOF
        berth init
        run berth import --name f "$T/future.tar"
        echo "$output"
        [ "$status" -eq 0 ]
        run berth --json ls f
        echo "$output"
        [ "$status" -eq 0 ]
        # saturated at the largest time in nanoseconds, not wrapped around
        printf '%s' "$output" | python3 -c '
import json, sys
d = {e["name"]: e["mtime_ns"] for e in json.load(sys.stdin)}
assert d["future"] == 2**63 - 1, d
assert d["past"] == -2**63, d
assert d["normal"] == 1700000000 * 10**9, d'
        run berth ls --long f
        [ "$status" -eq 0 ]
        run berth find 'fut*'
        [ "$status" -eq 0 ]
        # tmpfs keeps a time of 10^15 seconds, so the next backup of the
        # name compares it with the imported one's
        mkdir "$T/mnt"
        mount -t tmpfs tmpfs "$T/mnt"
        run berth restore f --target "$T/mnt/out"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(cat "$T/mnt/out/future")" = y ]
        [ "$(stat -c %Y "$T/mnt/out/future")" = 1000000000000000 ]
        run berth backup --path "$T/mnt/out" --name f --unchanged size,mtime
        echo "$output"
        [ "$status" -eq 0 ]
        umount "$T/mnt"
}

@test "check and a partial restore name damaged files escaped" {
        forged=$'x\nberth: error: forged'
        mkdir "$T/src"
        head -c 100000 /dev/urandom > "$T/src/$forged"
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        first=$(find "$BERTH_REPO/packs" -type f)
        echo other > "$T/src/other"
        berth backup --path "$T/src" --name v > /dev/null
        # the first pack holds the file's data, the second the new file list
        rm -f "$first"
        run berth check
        echo "$output"
        [ "$status" -ne 0 ]
        [ -z "$(printf '%s\n' "$output" | grep '^berth: error: forged')" ]
        [[ "$output" == *"e.g. 'x\\nberth: error: forged'"* ]]
        run berth restore v --partial --target "$T/out"
        echo "$output"
        [ "$status" -eq 3 ]
        [ -z "$(printf '%s\n' "$output" | grep '^berth: error: forged')" ]
        [[ "$output" == *"'x\\nberth: error: forged'"* ]]
}

@test "snapshot names are shown escaped by snapshots, restore and export" {
        mkdir -p "$T/src" && echo x > "$T/src/f"
        berth init
        name=$'evil\nberth: error: forged'
        berth backup --path "$T/src" --name "$name" > /dev/null
        for i in 1 2 3; do
                case $i in
                1) run berth snapshots ;;
                2) run berth restore "$name" --target "$T/out" ;;
                3) run berth export "$name" -o "$T/x.tar" ;;
                esac
                echo "$output"
                [ "$status" -eq 0 ]
                [ -z "$(printf '%s\n' "$output" | grep '^berth: error: forged')" ]
                [[ "$output" == *'evil\nberth'* ]]
        done
}
