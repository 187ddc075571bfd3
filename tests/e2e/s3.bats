#!/usr/bin/env bats
# s3.bats — repositories on S3-compatible object storage (transport/backend-s3.c),
# against a real Ceph RADOS Gateway started once for the file (rgw.bash).

load lib
load rgw

bats_require_minimum_version 1.5.0

setup_file() {
        command -v radosgw >/dev/null || skip "radosgw is not installed"
        RGW_TOP=$(mktemp -d "${TMPDIR:-/tmp}/berth-rgw.XXXXXX")
        export RGW_TOP
        rgw_up "$RGW_TOP/ceph" >&3 2>&3 || { rgw_down; return 1; }
}

teardown_file() {
        rgw_down
        [ -z "${RGW_TOP:-}" ] || rm -rf "$RGW_TOP"
}

@test "rgw: the gateway stores and serves an object (curl, SigV4)" {
        run timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_mkbucket smoke"
        [ "$status" -eq 0 ]
        printf 'hello gateway' > "$T/obj"
        timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_curl -f -T '$T/obj' \$RGW_ENDPOINT/smoke/a/b"
        run timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_curl -f \$RGW_ENDPOINT/smoke/a/b"
        [ "$status" -eq 0 ]
        [ "$output" = "hello gateway" ]
}
