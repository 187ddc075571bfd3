#!/usr/bin/env bats
# restore --verify: the restored tree is checked against the snapshot.

load lib

@test "restore --verify of every kind of entry succeeds and says so" {
        make_tree "$T/src"
        berth init
        run berth backup --path "$T/src" --name v
        [ "$status" -eq 0 ]
        id=$(last_line)
        run timeout -k 5 300 "$BERTH" -r "$BERTH_REPO" restore "$id" --target "$T/out" --verify
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"all match"* ]]
        run timeout -k 5 300 "$BERTH" -r "$BERTH_REPO" --json restore "$id" --target "$T/out2" --verify
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *'"verified":true'* ]]
        [[ "$output" == *'"mismatches":0'* ]]
}

@test "restore --verify refuses --include" {
        printf 'a' > "$T/f"
        berth init
        run berth backup --path "$T" --name v
        [ "$status" -eq 0 ]
        run "$BERTH" -r "$BERTH_REPO" restore v@latest --target "$T/out" --include f --verify
        [ "$status" -eq 2 ]
        [[ "$output" == *"--verify"*"--include"* ]]
        [ ! -e "$T/out" ]
}
