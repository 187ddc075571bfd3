#!/bin/bash
# load.sh — Berth under load, with figures: a directory of a million small
# files; a 20 GB sparse file; two backups and a prune at once on one
# repository; a backup to ssh:// over a link slowed by tc netem (delay and
# loss) between two network namespaces, or, where the kernel has no
# sch_netem, through a userspace slow link (tests/torture/slowlink.py).
#
#   BERTH=build/berth [LOAD_QUICK=1] [LOAD_FILES=1000000] [LOAD_SPARSE_GB=20]
#   [LOAD_NET_MB=32] [LOAD_NETEM="delay 40ms 10ms loss 1%"] [LOAD_RELAY=1]
#   [LOAD_SLOW_DELAY_MS=40] [LOAD_SLOW_JITTER_MS=10] [LOAD_SLOW_KBIT=4000]
#   [LOAD_SLOW_STALL=0.01] [LOAD_SLOW_STALL_MS=250]
#   [LOAD_PARTS=many,sparse,concurrent,net] tests/torture/load.sh
#
# LOAD_PARTS: the parts to run (default all).  The relay (LOAD_SLOW_*: one-way
# delay +- jitter, bandwidth, and per 4 KiB a stall of one retransmission
# timeout, seeded by TORTURE_SEED) stands in for netem when tc cannot add it,
# or always with LOAD_RELAY=1; then the same transfer also runs unslowed for
# comparison, and the relay is killed in the middle of a backup: berth must
# fail with an error within 60 s, and a rerun must complete and pass check.
# LOAD_QUICK=1: 20000 files, 2 GB sparse, 8 MB over the slow link.  Each
# restore is compared with its source (tests/e2e/treecmp.py), `check`
# passes after each part; the restored sparse file must stay sparse.  Peak
# RSS and wall time come from /usr/bin/time when it is installed, else
# from GNU time in bash's TIMEFORMAT (time only).  Ends with a table.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
if [ "${LOAD_QUICK:-0}" = 1 ]; then FILES=${LOAD_FILES:-20000} GB=${LOAD_SPARSE_GB:-2} NETMB=${LOAD_NET_MB:-8}
else FILES=${LOAD_FILES:-1000000} GB=${LOAD_SPARSE_GB:-20} NETMB=${LOAD_NET_MB:-32}; fi
NETEM=${LOAD_NETEM:-delay 40ms 10ms loss 1%}
read -ra NETEM_ARGS <<< "$NETEM"
PARTS=${LOAD_PARTS:-many,sparse,concurrent,net}
SL_DELAY=${LOAD_SLOW_DELAY_MS:-40} SL_JITTER=${LOAD_SLOW_JITTER_MS:-10} SL_KBIT=${LOAD_SLOW_KBIT:-4000}
SL_STALL=${LOAD_SLOW_STALL:-0.01} SL_STALL_MS=${LOAD_SLOW_STALL_MS:-250}
echo "load.sh: TORTURE_SEED=$SEED LOAD_PARTS=$PARTS LOAD_FILES=$FILES LOAD_SPARSE_GB=$GB LOAD_NET_MB=$NETMB LOAD_NETEM='$NETEM'"
# want PART: whether LOAD_PARTS names it
want() { case ",$PARTS," in *",$1,"*) return 0 ;; esac; return 1; }
tw_init load
ROWS=()
row() { ROWS+=("$(printf '%-34s %10s %12s  %s' "$1" "$2" "$3" "$4")"); }

# measure OUT CMD...: runs CMD; sets SECS and RSS (MiB, "-" when unknown); output to $LOG
measure() {
        local t0; t0=$(now_ms)
        if [ -x /usr/bin/time ]; then
                /usr/bin/time -f 'maxrss %M' -o "$W/time" timeout -k 5 3600 "$@" >> "$LOG" 2>&1
        else
                timeout -k 5 3600 "$@" >> "$LOG" 2>&1
        fi
        local rc=$?
        SECS=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
        RSS=-
        [ -s "$W/time" ] && RSS=$(awk '/maxrss/ { printf "%.1f", $2 / 1024 }' "$W/time")
        rm -f "$W/time"
        return $rc
}

b init > /dev/null || { echo "load.sh: init failed"; exit 1; }

# --- a million small files ---
if want many; then
        M="$W/many"
        t0=$(now_ms)
        python3 - "$M" "$FILES" "$SEED" <<'PY'
import os, sys, random
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "w") as f:
        f.write("file %d %d\n" % (i, rnd.randrange(1 << 30)) * (1 + i % 7))
PY
        echo "made $FILES files in $(( ($(now_ms) - t0) / 1000 )) s" >> "$LOG"
        if measure "$BERTH" backup --path "$M" --name many; then
                row "backup: $FILES small files" "$SECS s" "$RSS MiB" "ok"
                ID=$(listed | tail -n 1)
                if measure "$BERTH" restore "$ID" --target "$W/many-out"; then
                        r="$SECS s" m="$RSS MiB"
                        if python3 "$TREECMP" --no-root-times "$M" "$W/many-out" >> "$LOG" 2>&1; then row "restore: $FILES small files" "$r" "$m" "identical"
                        else row "restore: $FILES small files" "$r" "$m" "DIFFERS"; tw_fail "restore of $FILES files differs from the source"; fi
                else row "restore: $FILES small files" "-" "-" "FAILED"; tw_fail "berth restore $ID (many files) failed"; fi
        else row "backup: $FILES small files" "-" "-" "FAILED"; tw_fail "berth backup --path $M failed"; fi
        rm -rf "$M" "$W/many-out"
        b check >> "$LOG" 2>&1 || tw_fail "check fails after the many-files part"
fi

# --- a sparse file of GB gigabytes ---
if want sparse; then
        S="$W/sparse"
        mkdir -p "$S"
        truncate -s "${GB}G" "$S/big"
        for off in 0 4096 1048576000 $(( GB * 1024 * 1024 * 1024 - 100 )); do
                printf 'data at %d' "$off" | dd of="$S/big" bs=1 seek="$off" conv=notrunc 2>/dev/null
        done
        if measure "$BERTH" backup --path "$S" --name sparse; then
                row "backup: ${GB} GB sparse file" "$SECS s" "$RSS MiB" "ok"
                ID=$(listed | tail -n 1)
                if measure "$BERTH" restore "$ID" --target "$W/sparse-out"; then
                        r="$SECS s" m="$RSS MiB"
                        du_k=$(du -k "$W/sparse-out/big" | cut -f1)
                        ok="du ${du_k} KiB"
                        if ! cmp -s "$S/big" "$W/sparse-out/big"; then ok="$ok, DIFFERS"; tw_fail "the restored sparse file differs"; fi
                        if [ "$du_k" -gt 10240 ]; then ok="$ok, NOT SPARSE"; tw_fail "the restored ${GB} GB sparse file takes $du_k KiB on disk"; fi
                        row "restore: ${GB} GB sparse file" "$r" "$m" "$ok"
                else row "restore: ${GB} GB sparse file" "-" "-" "FAILED"; tw_fail "berth restore $ID (sparse) failed"; fi
        else row "backup: ${GB} GB sparse file" "-" "-" "FAILED"; tw_fail "berth backup --path $S failed"; fi
        rm -rf "$S" "$W/sparse-out"
fi

# --- two backups and a prune at once (a repository of their own: prune
# time grows with the chunks per pack, which the many-files part piles up) ---
if want concurrent; then
        export BERTH_REPO="$W/repo2"
        b init > /dev/null || tw_fail "init of a second repository failed"
        C1="$W/c1" C2="$W/c2"
        mkdir -p "$C1" "$C2"
        for i in $(seq 1 16); do head -c 4000000 /dev/urandom > "$C1/r$i"; head -c 4000000 /dev/urandom > "$C2/r$i"; done
        # garbage for the prune: an older snapshot of c1, forgotten
        b backup --path "$C1" --name c1 > /dev/null 2>> "$LOG"
        head -c 4000000 /dev/urandom > "$C1/r1"
        b backup --path "$C1" --name c1 > /dev/null 2>> "$LOG"
        head -c 4000000 /dev/urandom > "$C1/r1"
        b forget --name c1 --keep-last 1 > /dev/null 2>> "$LOG"
        before=$(listed | wc -l)
        t0=$(now_ms)
        # writers take turns (--lock-wait): none may fail, nothing may be lost
        "$BERTH" --lock-wait 600 backup --path "$C1" --name c1 >> "$LOG" 2>&1 & p1=$!
        "$BERTH" --lock-wait 600 backup --path "$C2" --name c2 >> "$LOG" 2>&1 & p2=$!
        "$BERTH" --lock-wait 600 prune >> "$LOG" 2>&1 & p3=$!
        wait $p1; r1=$?; wait $p2; r2=$?; wait $p3; r3=$?
        secs=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
        ok="exits $r1/$r2/$r3"
        [ "$r1$r2$r3" = 000 ] || tw_fail "concurrent backup, backup, prune exited $r1, $r2, $r3"
        b check --read-data >> "$LOG" 2>&1 || { ok="$ok, CHECK FAILS"; tw_fail "check --read-data fails after the concurrent run"; }
        for n in c1 c2; do
                id=$(b --json snapshots "$n" 2>/dev/null | python3 -c 'import json,sys; l=json.load(sys.stdin); print(l[-1]["id"] if l else "")')
                src=$C1; [ "$n" = c2 ] && src=$C2
                rm -rf "$W/cout"
                if [ -z "$id" ] || ! b restore "$id" --target "$W/cout" >> "$LOG" 2>&1 ||
                        ! python3 "$TREECMP" --no-root-times "$src" "$W/cout" >> "$LOG" 2>&1; then
                        ok="$ok, $n LOST"; tw_fail "after the concurrent run the snapshot of $n is missing or differs"
                fi
        done
        row "2 backups + prune at once (128 MB)" "$secs s" "-" "$ok, $(( $(listed | wc -l) - before )) new snapshots, restored identical"
        rm -rf "$C1" "$C2" "$W/cout"
        export BERTH_REPO="$W/repo"
fi

# --- ssh:// over a slowed link in a network namespace ---
# net_run LABEL URL FAR NOTE: $N backed up to URL (FAR: the same repository
# seen from here), check --read-data, restored over URL; two rows
net_run() {
        local label=$1 url=$2 far=$3 ok=$4 id
        if ! b -r "$far" init >> "$LOG" 2>&1; then
                row "backup to ssh:// $label" "-" "-" "FAILED (init)"; tw_fail "berth -r $far init failed"; return
        fi
        if ! measure "$BERTH" -r "$url" "${SSH[@]}" backup --path "$N" --name net; then
                row "backup ${NETMB} MB to ssh:// $label" "-" "-" "FAILED"; tw_fail "berth -r $url backup ($label) failed"; return
        fi
        id=$(listed "$far" | tail -n 1)
        if ! b -r "$far" check --read-data >> "$LOG" 2>&1; then ok="$ok, CHECK FAILS"; tw_fail "check of the ssh:// repository ($label) fails"; fi
        row "backup ${NETMB} MB to ssh:// $label" "$SECS s" "$RSS MiB" "$ok"
        rm -rf "$W/nout"
        if ! measure "$BERTH" -r "$url" "${SSH[@]}" restore "$id" --target "$W/nout"; then
                row "restore ${NETMB} MB, ssh:// $label" "-" "-" "FAILED"; tw_fail "restore over ssh:// ($label) failed"
        elif ! python3 "$TREECMP" --no-root-times "$N" "$W/nout" >> "$LOG" 2>&1; then
                row "restore ${NETMB} MB, ssh:// $label" "$SECS s" "$RSS MiB" "DIFFERS"; tw_fail "restore over ssh:// ($label) differs from the source"
        else row "restore ${NETMB} MB, ssh:// $label" "$SECS s" "$RSS MiB" "identical"; fi
        rm -rf "$W/nout"
}

# relay_up: the userspace slow link on 127.0.0.1:RPORT (a free port the
# first time) to the sshd in the namespace; sets RELAY_PID and RPORT
relay_up() {
        rm -f "$W/relay.port"
        python3 "$HERE/slowlink.py" relay --listen "127.0.0.1:${RPORT:-0}" --to "10.231.0.2:$PORT" \
                --delay-ms "$SL_DELAY" --jitter-ms "$SL_JITTER" --kbit "$SL_KBIT" --stall "$SL_STALL" \
                --stall-ms "$SL_STALL_MS" --seed "$SEED" --port-file "$W/relay.port" 2>> "$LOG" & RELAY_PID=$!
        for _ in $(seq 1 100); do [ -s "$W/relay.port" ] && break; sleep 0.1; done
        [ -s "$W/relay.port" ] || return 1
        RPORT=$(cat "$W/relay.port")
}
relay_down() {
        [ -n "${RELAY_PID:-}" ] && kill "$RELAY_PID" 2>/dev/null && { wait "$RELAY_PID"; } 2>/dev/null
        RELAY_PID=
}

# net_cut URL FAR: the relay killed (-9) in the middle of a backup to URL:
# berth fails with a message within 60 s; a rerun completes, check passes
net_cut() {
        local url=$1 far=$2 C="$W/cut" bp rc t0 secs err ok hung=0 i
        mkdir -p "$C"
        for i in $(seq 1 $(( NETMB < 8 ? NETMB / 4 : 2 ))); do head -c 4000000 /dev/urandom > "$C/r$i"; done
        "$BERTH" -r "$url" "${SSH[@]}" backup --path "$C" --name cut > /dev/null 2> "$W/cut.err" & bp=$!
        sleep_ms $(( 1500 + $(rand_upto 1500) ))
        if ! kill -0 "$bp" 2>/dev/null; then
                wait "$bp"; rc=$?
                row "ssh:// link cut mid-backup" "-" "-" "not cut (the backup ended first, exit $rc)"
                return
        fi
        kill -9 "$RELAY_PID"; { wait "$RELAY_PID"; } 2>/dev/null; RELAY_PID=
        t0=$(now_ms)
        for i in $(seq 1 600); do kill -0 "$bp" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$bp" 2>/dev/null; then hung=1; kill -9 "$bp"; fi
        wait "$bp"; rc=$?
        secs=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN { printf "%.1f", ms / 1000 }')
        cat "$W/cut.err" >> "$LOG"
        err=$(grep -v '^[[:space:]]*$' "$W/cut.err" | tail -n 1)
        ok="exit $rc: ${err:-NO MESSAGE}"
        if [ "$hung" = 1 ]; then ok="HUNG (killed after 60 s)"; tw_fail "backup over ssh:// still running 60 s after the link was cut"
        elif [ "$rc" = 0 ]; then tw_fail "backup over ssh:// succeeded though the link was cut"
        elif [ -z "$err" ]; then tw_fail "backup over a cut ssh:// link failed without a message"; fi
        if ! relay_up; then
                ok="$ok; RELAY RESTART FAILED"; tw_fail "slowlink.py did not restart on port $RPORT"
        elif ! b -r "$url" "${SSH[@]}" --lock-wait 60 backup --path "$C" --name cut >> "$LOG" 2>&1; then
                ok="$ok; RERUN FAILS"; tw_fail "backup over ssh:// after a cut link fails on rerun"
        elif ! b -r "$far" check --read-data >> "$LOG" 2>&1; then
                ok="$ok; rerun ok, CHECK FAILS"; tw_fail "check fails after a cut link and a rerun"
        else ok="$ok; rerun ok, check ok"; fi
        row "ssh:// link cut mid-backup" "$secs s" "-" "$ok"
        rm -rf "$C"
}

if want net; then
        NS="berth-load-$$"
        if ! command -v ip > /dev/null || ! command -v tc > /dev/null || [ ! -x /usr/sbin/sshd ]; then
                row "ssh:// over netem" "-" "-" "left out (needs iproute2 and openssh-server)"
        elif ! ip netns add "$NS" 2>> "$LOG"; then
                row "ssh:// over netem" "-" "-" "left out (cannot create a network namespace)"
        else
                VA="vb$$a" VB="vb$$b"
                net_down() { relay_down; ip link del "$VA" 2>/dev/null; [ -n "${NSPID:-}" ] && kill "$NSPID" 2>/dev/null && wait "$NSPID" 2>/dev/null; ip netns del "$NS" 2>/dev/null; }
                # (an interrupted run stops the relay, sshd and namespace too)
                trap 'net_down; tw_cleanup' EXIT
                ip link add "$VA" type veth peer name "$VB" && ip link set "$VB" netns "$NS" &&
                ip addr add 10.231.0.1/24 dev "$VA" && ip link set "$VA" up &&
                ip netns exec "$NS" ip addr add 10.231.0.2/24 dev "$VB" && ip netns exec "$NS" ip link set "$VB" up &&
                ip netns exec "$NS" ip link set lo up
                RELAY=0
                if [ "${LOAD_RELAY:-0}" = 1 ]; then
                        RELAY=1
                elif ! tc qdisc add dev "$VA" root netem "${NETEM_ARGS[@]}" 2>> "$LOG" ||
                        ! ip netns exec "$NS" tc qdisc add dev "$VB" root netem "${NETEM_ARGS[@]}" 2>> "$LOG"; then
                        RELAY=1
                        echo "load.sh: tc netem is not available in this kernel: the ssh:// transfer goes through tests/torture/slowlink.py"
                fi
                D="$W/nsd"; mkdir -p "$D"; chmod 700 "$D"
                sshd_keys "$D"; ssh-keygen -q -t ed25519 -N '' -f "$D/user_key"; cp "$D/user_key.pub" "$D/authorized_keys"
                PORT=2222
                cat > "$D/sshd_config" <<CONF
Port $PORT
ListenAddress 10.231.0.2
HostKey $D/host_ed25519
AuthorizedKeysFile $D/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $D/sshd.pid
CONF
                mkdir -p /run/sshd
                ip netns exec "$NS" /usr/sbin/sshd -D -e -f "$D/sshd_config" 2>> "$D/sshd.log" & NSPID=$!
                for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/10.231.0.2/$PORT") 2>/dev/null && break; sleep 0.1; done
                echo "[10.231.0.2]:$PORT $(cut -d' ' -f1,2 "$D/host_ed25519.pub")" > "$W/kh"
                rtt=$(ping -c 3 -q 10.231.0.2 2>/dev/null | awk -F/ '/rtt/ { print $5 " ms" }')
                [ -n "$rtt" ] || rtt=$(python3 "$HERE/slowlink.py" probe "10.231.0.2:$PORT" 2>> "$LOG" | awk '{ print $1 "/" $2 " ms min/avg" }')
                N="$W/net"; mkdir -p "$N"
                for i in $(seq 1 $(( NETMB / 4 ))); do head -c 4000000 /dev/urandom > "$N/r$i"; done
                seq 1 100000 > "$N/text"
                SSH=(-i "$D/user_key" --known-hosts "$W/kh" --remote-berth "$BERTH")
                # (the far host shares this filesystem: init there is init here)
                if [ "$RELAY" = 0 ]; then
                        net_run "over netem" "ssh://root@10.231.0.2:$PORT$W/far" "$W/far" "netem '$NETEM', rtt ${rtt:-?}"
                else
                        net_run "direct veth" "ssh://root@10.231.0.2:$PORT$W/far0" "$W/far0" "unslowed, rtt ${rtt:-?}"
                        if ! relay_up; then
                                row "ssh:// over relay" "-" "-" "FAILED (slowlink.py did not start)"; tw_fail "slowlink.py did not start"
                        else
                                echo "[127.0.0.1]:$RPORT $(cut -d' ' -f1,2 "$D/host_ed25519.pub")" >> "$W/kh"
                                rrtt=$(python3 "$HERE/slowlink.py" probe "127.0.0.1:$RPORT" 2>> "$LOG" | awk '{ print $1 "/" $2 " ms min/avg" }')
                                net_run "over relay" "ssh://root@127.0.0.1:$RPORT$W/far" "$W/far" \
                                        "userspace relay: delay $SL_DELAY ms, $SL_KBIT kbit/s, stall p=$SL_STALL, rtt ${rrtt:-?}"
                                net_cut "ssh://root@127.0.0.1:$RPORT$W/far" "$W/far"
                        fi
                fi
                net_down
                trap tw_cleanup EXIT
        fi
fi

printf '\nload, TORTURE_SEED=%s%s\n' "$SEED" "$([ "${LOAD_QUICK:-0}" = 1 ] && echo ", LOAD_QUICK=1")"
printf '%-34s %10s %12s  %s\n' what time "peak RSS" result
for r in "${ROWS[@]}"; do echo "$r"; done
if [ "$TW_FAILURES" -gt 0 ]; then echo "load.sh: $TW_FAILURES failure(s)"; exit 1; fi
exit 0
