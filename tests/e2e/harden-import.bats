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
