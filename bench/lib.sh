# Shared helpers of the bench/ scripts. Source it after setting ROOT (the
# repository) and WORK (the run's temp dir):
#   . "$ROOT/bench/lib.sh"
# It defines:
#   log MSG...            a timestamped line on stderr;
#   die MSG...            log, then exit 1;
#   need CMD PACKAGE      installs PACKAGE with apt-get when CMD is missing;
#   strom_under_test      sets STROM to a copy of the binary under test (see
#                         below) and REV to `git describe` of ROOT;
#   nginx_temp_paths      nginx `*_temp_path` lines inside $WORK/nginx/tmp,
#                         for the `http` block of a throw-away nginx.conf.

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "$*"; exit 1; }

need() { # need CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    if ! apt-get install -y "$2" >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y "$2" >/dev/null
    fi
}

# STROM_BIN names a prebuilt binary; otherwise `cargo build --release -p
# strom` into CARGO_TARGET_DIR (default ROOT/target), falling back to an
# existing binary there when the build fails. The server runs as a copy in
# WORK under another name: the binary stays fixed for the whole run even if
# the target dir is rebuilt meanwhile, and on a shared machine a `pkill
# strom` from elsewhere does not stop the server under test.
strom_under_test() {
    local bin
    if [[ -n "${STROM_BIN:-}" ]]; then
        bin=$STROM_BIN
    else
        local target=${CARGO_TARGET_DIR:-target}
        [[ $target == /* ]] || target=$ROOT/$target
        log "cargo build --release -p strom (target dir $target)"
        if ! (cd "$ROOT" && cargo build --release -p strom >"$WORK/build.log" 2>&1); then
            tail -20 "$WORK/build.log" >&2
            [[ -x "$target/release/strom" ]] || die "build failed"
            log "build failed; using the existing $target/release/strom"
        fi
        bin=$target/release/strom
    fi
    [[ -x $bin ]] || die "no strom binary at $bin"
    cp -p "$bin" "$WORK/server-under-test"
    REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')
    log "strom $REV, binary $bin from $(date -r "$bin" '+%F %T')"
    STROM=$WORK/server-under-test
}

nginx_temp_paths() {
    local t
    for t in client_body proxy fastcgi uwsgi scgi; do
        echo "    ${t}_temp_path $WORK/nginx/tmp/${t#client_};"
    done
}
