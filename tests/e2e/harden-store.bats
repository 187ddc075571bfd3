#!/usr/bin/env bats
# Issue 8, items 4 and 14: one damaged object never stops backups, and a
# backup of data the repository already holds stays within bounded memory.

load lib

# peak_kib CMD...: runs CMD under /usr/bin/time; prints its peak RSS in KiB
# on the last line of $output, keeps its exit status in $status.
peak_rss() {
        run timeout -k 5 300 /usr/bin/time -f 'PEAK_RSS_KIB %M' "$@"
        peak=$(printf '%s\n' "$output" | sed -n 's/^PEAK_RSS_KIB //p' | tail -n 1)
        echo "peak RSS ${peak} KiB: $*"
}

# ---- item 14 ------------------------------------------------------------------

@test "a backup of data already stored peaks under 64 MiB (second name, --force-read, touched file)" {
        [ -x /usr/bin/time ] || skip "needs /usr/bin/time (package time)"
        mkdir "$T/src"
        head -c 400000000 /dev/urandom > "$T/src/big"
        touch -d '-1 hour' "$T/src/big"
        berth init
        peak_rss "$BERTH" backup --path "$T/src" --name first
        [ "$status" -eq 0 ]
        [ "$peak" -le 65536 ]
        peak_rss "$BERTH" backup --path "$T/src" --name first --force-read
        [ "$status" -eq 0 ]
        [ "$peak" -le 65536 ]
        peak_rss "$BERTH" backup --path "$T/src" --name second
        [ "$status" -eq 0 ]
        [ "$peak" -le 65536 ]
        touch -d '-30 min' "$T/src/big"
        peak_rss "$BERTH" backup --path "$T/src" --name first
        [ "$status" -eq 0 ]
        [ "$peak" -le 65536 ]
        # nothing new was stored, and the data is right
        [ "$(find "$BERTH_REPO/packs" -type f | wc -l)" -le 30 ]
        run timeout -k 5 300 "$BERTH" restore second@latest --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/big" "$T/out/big"
}
