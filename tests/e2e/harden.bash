# harden.bash — helpers for the failure-path tests of restore: a working
# directory of same-named directories, what a deferred fix-up could change
# in it, and damage to one file's data in the packs.

# Same-named directories where berth is started from, with other metadata.
make_cwd() {
        local w=$1
        mkdir -p "$w/a/b" "$w/etc"
        chmod 0755 "$w" "$w/a" "$w/a/b" "$w/etc"
        touch -d '2020-01-01 00:00:00' "$w/a/b" "$w/a" "$w/etc" "$w"
}

# Everything that a deferred fix-up could change, for such a directory.
describe_dirs() {
        local w=$1
        for p in "$w" "$w/a" "$w/a/b" "$w/etc"; do
                stat -c '%n %a %u %g %Y' "$p"
                getfacl -cp "$p" 2>/dev/null | sort
                lsattr -d "$p" 2>/dev/null | cut -d' ' -f1
        done
}

# damage_in_packs FILE: flips a byte of FILE's data (bytes 2,000,000 on,
# random so stored uncompressed) where it lies in the repository's packs.
damage_in_packs() {
        python3 - "$1" "$BERTH_REPO/packs" <<'PY'
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
sys.exit(sys.argv[1] + "'s bytes are in no pack")
PY
}
