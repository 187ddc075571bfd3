#!/usr/bin/env bats
# crypto-copy.bats — copy, restore --host and migrate with encrypted
# repositories: encrypted to plain, plain to encrypted, encrypted to
# encrypted under another password (chunks re-keyed), the destination's own
# password, no plaintext in an encrypted destination, and an encrypted local
# repository sending a snapshot to another Docker host.  The harness of
# migrate.bats (twohost.bash): a real sshd on loopback and a second dockerd.

bats_require_minimum_version 1.5.0

load twohost

CANARY=zqxcopycanary4417

b() { timeout -k 5 120 "$BERTH" "$@"; }

# Passwords, a cheap KDF, and a tree with the canary in names and contents.
prep() {
        unset BERTH_PASSWORD BERTH_PASSWORD_FILE BERTH_TO_PASSWORD_FILE CREDENTIALS_DIRECTORY
        export BERTH_SCRYPT_N_LOG2=14
        printf 'source password\n' > "$T/pw"
        printf 'destination password\n' > "$T/pw2"
        printf 'wrong password\n' > "$T/bad"
        make_tree "$T/src"
        mkdir -p "$T/src/dir-$CANARY"
        for i in $(seq 1 2000); do echo "row $i $CANARY"; done > "$T/src/dir-$CANARY/file-$CANARY.csv"
}

packs_of() { find "$1/packs" -type f | sort; }

# restored REPO PASSWORD-ARGS... : restores data@latest of REPO into a new directory and compares
restored() {
        local repo=$1; shift
        local out; out=$(mktemp -d "$T/out.XXXXXX")
        run b -r "$repo" "$@" restore data@latest --target "$out"
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$out"
        echo "$output"
        [ "$status" -eq 0 ]
}

no_canary() { # DIR...: no byte of the canary anywhere
        run grep -rl -a "$CANARY" "$@"
        echo "$output"
        [ "$status" -eq 1 ]
}

@test "crypto-copy: encrypted to plain, restored identical; a second copy adds nothing" {
        prep
        b --password-file "$T/pw" init --encrypt
        b --password-file "$T/pw" backup --path "$T/src" -n data
        run --separate-stderr b --password-file "$T/pw" --json copy data@latest --to "$T/plain"
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        [[ "$stderr" == *"$T/plain is not encrypted: the snapshots copied there are stored in plain form"* ]]
        to_id=$(json_get '["snapshots"][0]["to_id"]' <<<"$output")
        [ -e "$T/plain/snapshots/$to_id" ]
        [ "$(json_get '["snapshots"][0]["id"]' <<<"$output")" != "$to_id" ]
        restored "$T/plain"
        run b -r "$T/plain" check --read-data
        [ "$status" -eq 0 ]
        before=$(packs_of "$T/plain")
        run --separate-stderr b --password-file "$T/pw" --json copy data@latest --to "$T/plain"
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_present"]' <<<"$output")" -eq 1 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -eq 0 ]
        [ "$(packs_of "$T/plain")" = "$before" ]
}

@test "crypto-copy: plain to encrypted, restored identical, no canary in the destination or its cache; a second copy adds nothing" {
        prep
        b backup --path "$T/src" -n data
        b --password-file "$T/pw2" -r "$T/enc" init --encrypt
        run --separate-stderr b copy data@latest --to "$T/enc" --to-password-file "$T/pw2" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -gt 3000000 ]
        no_canary "$T/enc"
        restored "$T/enc" --password-file "$T/pw2"
        run b -r "$T/enc" --password-file "$T/pw2" check --read-data
        [ "$status" -eq 0 ]
        before=$(packs_of "$T/enc")
        # BERTH_TO_PASSWORD_FILE works as --to-password-file
        BERTH_TO_PASSWORD_FILE=$T/pw2 run --separate-stderr b copy data@latest --to "$T/enc" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_present"]' <<<"$output")" -eq 1 ]
        [ "$(packs_of "$T/enc")" = "$before" ]
}

@test "crypto-copy: encrypted to encrypted under another password, identical, no canary; a changed snapshot adds a little" {
        prep
        b --password-file "$T/pw" init --encrypt
        b --password-file "$T/pw" backup --path "$T/src" -n data
        b --password-file "$T/pw2" -r "$T/enc" init --encrypt
        run --separate-stderr b --password-file "$T/pw" copy data@latest --to "$T/enc" --to-password-file "$T/pw2"
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [[ "$output" == *"copied as "* ]]
        no_canary "$T/enc"
        restored "$T/enc" --password-file "$T/pw2"
        # the source's password does not open the destination
        run b -r "$T/enc" --password-file "$T/pw" snapshots
        [ "$status" -eq 1 ]
        # a small change: the second snapshot adds a little, not the volume
        before=$(du -sb "$T/enc/packs" | cut -f1)
        printf 'CHANGED' | dd of="$T/src/rand.bin" bs=1 seek=1500000 conv=notrunc 2>/dev/null
        b --password-file "$T/pw" backup --path "$T/src" -n data
        run --separate-stderr b --password-file "$T/pw" --json copy data@latest --to "$T/enc" --to-password-file "$T/pw2"
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        added=$(( $(du -sb "$T/enc/packs" | cut -f1) - before ))
        echo "# second encrypted copy after a 7-byte change added $added bytes" >&3
        [ "$added" -lt 300000 ]
        restored "$T/enc" --password-file "$T/pw2"
}

@test "crypto-copy: a wrong destination password is refused with exit 1, and nothing is written" {
        prep
        b --password-file "$T/pw" init --encrypt
        b --password-file "$T/pw" backup --path "$T/src" -n data
        b --password-file "$T/pw2" -r "$T/enc" init --encrypt
        sums() { (cd "$T/enc" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
        before=$(sums)
        run b --password-file "$T/pw" copy data@latest --to "$T/enc" --to-password-file "$T/bad"
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"wrong password for repository $T/enc"* ]]
        [ "$(sums)" = "$before" ]
        # without a destination password, the source's is tried: wrong too
        run b --password-file "$T/pw" copy data@latest --to "$T/enc"
        echo "$output"
        [ "$status" -eq 1 ]
        [ "$(sums)" = "$before" ]
        run b --password-file "$T/pw" copy data@latest --to "$T/enc" --to-password-command false
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"--to-password-command"* ]]
        [ "$(sums)" = "$before" ]
}

@test "crypto-copy: encrypted to an encrypted ssh:// repository (keyless serve end), identical, no canary there" {
        prep
        b --password-file "$T/pw" init --encrypt
        b --password-file "$T/pw" backup --path "$T/src" -n data
        b --password-file "$T/pw2" -r "$FAR_REPO" init --encrypt
        ssh_opts=(-i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$T/far-berth")
        run --separate-stderr b "${ssh_opts[@]}" --password-file "$T/pw" copy data@latest \
                --to "ssh://$SSHD_DEST$FAR_REPO" --to-password-file "$T/pw2" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        no_canary "$FAR_REPO"
        restored "$FAR_REPO" --password-file "$T/pw2"
        run --separate-stderr b "${ssh_opts[@]}" --password-file "$T/pw" copy data@latest \
                --to "ssh://$SSHD_DEST$FAR_REPO" --to-password-file "$T/pw2" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_present"]' <<<"$output")" -eq 1 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -eq 0 ]
}

# restore --host with the SSH options of this test
rh() {
        timeout -k 5 180 "$BERTH" restore -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$T/far-berth" \
                --remote-repo "$FAR_REPO" "$@"
}

@test "crypto-copy: restore --host and migrate from an encrypted repository land identical on the other host; an encrypted far repository is refused" {
        prep
        b --password-file "$T/pw" init --encrypt
        make_volume evol ectr
        run b --password-file "$T/pw" backup evol
        echo "$output"
        [ "$status" -eq 0 ]
        run --separate-stderr rh --password-file "$T/pw" evol@latest --host "$SSHD_DEST" --to-volume evol-dr --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["repo_created"]' <<<"$output")" = True ]
        id=$(json_get '["remote_snapshot"]' <<<"$output")
        [ -e "$FAR_REPO/snapshots/$id" ]
        [ ! -e "$FAR_REPO/keys" ]
        run python3 "$TREECMP" "$(mountpoint_of evol)" "$(far_mountpoint evol-dr)"
        echo "$output"
        [ "$status" -eq 0 ]

        # migrate: the same far repository; only the backup's new parts go
        run --separate-stderr mb --password-file "$T/pw" evol "$SSHD_DEST" --as evol-mig --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -lt 1000000 ]
        run python3 "$TREECMP" "$(mountpoint_of evol)" "$(far_mountpoint evol-mig)"
        echo "$output"
        [ "$status" -eq 0 ]

        # an encrypted far repository: refused before anything is sent
        b --password-file "$T/pw2" -r "$T/far-enc" init --encrypt
        run rh --password-file "$T/pw" evol@latest --host "$SSHD_DEST" --to-volume evol-x --remote-repo "$T/far-enc"
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"is encrypted"*"unencrypted repository"* ]]
        [ ! -e "$T/far-enc/snapshots" ] || [ -z "$(ls "$T/far-enc/snapshots")" ]
        run far volume inspect evol-x
        [ "$status" -ne 0 ]
}

@test "crypto-copy: recover puts back a container while a stuck backup holds an encrypted repository (the journal is in the catalog cache)" {
        prep
        b --password-file "$T/pw" init --encrypt
        docker volume create vstuck > /dev/null
        mp=$(mountpoint_of vstuck)
        for i in $(seq 1 10); do head -c 40000000 /dev/urandom > "$mp/f$i"; done
        docker run -d --name stuck -v vstuck:/data berth-test:latest idle > /dev/null
        wait_state stuck running
        # every chunk stored already: the stuck run writes nothing to the catalog
        b --password-file "$T/pw" backup vstuck --quiesce none > /dev/null
        "$BERTH" --password-file "$T/pw" backup vstuck --no-two-phase --force-read > "$T/out" 2>&1 &
        pid=$!
        wait_state stuck paused
        kill -STOP "$pid"
        run timeout -k 5 60 "$BERTH" --password-file "$T/pw" recover
        kill -CONT "$pid"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"without waiting"* ]]
        [[ "$output" == *"put back 1 container"* ]]
        [ "$(state stuck)" = running ]
        # no catalog was made beside the ciphertext
        [ ! -e "$T/repo/catalog.db" ]
        rc=0
        timeout 120 tail --pid="$pid" -f /dev/null
        wait "$pid" || rc=$?
        cat "$T/out"
        [ "$rc" -eq 1 ]
        docker rm -f stuck > /dev/null
        docker volume rm vstuck > /dev/null
}
