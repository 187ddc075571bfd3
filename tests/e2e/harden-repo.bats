#!/usr/bin/env bats
# Issue 8, the repository side: references, locks, read-only media, what a
# writer indexes by itself, and catalog rebuild.

load lib

# --- item 8: names are not ids ---------------------------------------------

@test "a series named like an id prefix of another snapshot is ambiguous; NAME@latest picks the series" {
        mkdir "$T/a" "$T/b"
        echo a > "$T/a/f"
        echo b > "$T/b/f"
        berth init > /dev/null
        id=$(berth backup --path "$T/a" --name vol | tail -n 1)
        prefix=${id:0:6}
        bid=$(berth backup --path "$T/b" --name "$prefix" | tail -n 1)
        run berth cat "$prefix" f
        [ "$status" -eq 1 ]
        [[ "$output" == *"'$prefix' is both the name of a snapshot series"* ]]
        [[ "$output" == *"${id:0:12}"* ]]
        [[ "$output" == *"${bid:0:12}"* ]]
        [[ "$output" == *"$prefix@latest"* ]]
        [ "$(berth cat "$prefix@latest" f)" = b ]
        # more of the id is not a name: it resolves to the id
        [ "$(berth cat "${id:0:12}" f)" = a ]
        [ "$(berth cat vol f)" = a ]
}

# --- item 13: init --pack-size ---------------------------------------------

@test "init refuses a pack size that later commands would reject" {
        for s in 1K 512K 3G; do
                run berth init --pack-size "$s"
                [ "$status" -ne 0 ]
                [[ "$output" == *"pack size"*"out of range"* ]]
                [ ! -e "$BERTH_REPO/config" ]
        done
        run berth init --pack-size 1M
        [ "$status" -eq 0 ]
        run berth snapshots
        [ "$status" -eq 0 ]
}
