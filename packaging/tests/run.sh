#!/usr/bin/env bash
# The packages' tests (issue 17), run by scripts/test.sh after the workspace's tests:
#
#   1. build the packages twice from this workspace (an older version with a version
#      suffix, then the real one) and run lintian on them;
#   2. the man pages render and list every subcommand and option --help lists; the
#      completions load;
#   3. a clean Debian 12 root (debootstrap --variant=minbase; cached, see make_root):
#      apt installs the packages and resolves their Depends; files, modes, groups,
#      conffiles; uvmmd started exactly as the unit's ExecStart line with the seed's
#      DAEMON_OPTS (loopback instead of 0.0.0.0: no TLS yet) and reached with the CLI;
#      log rotation; remove and purge keep what README.Debian says;
#   4. the same root booted with systemd in systemd-nspawn: systemd-analyze verify,
#      Type=notify, hardening, reload, restart on failure, the upgrade from the older
#      build with backups present (none lost, one restart), a configuration the new
#      version refuses (no restart), start at boot, remove and purge under systemd.
#
# Needs root and the tools scripts/test.sh installs (a missing tool fails the run).
# UVMM_PKGTEST_DEBS=DIR takes the packages of step 1 from DIR (build_test_packages in
# scripts/lib.sh made them; scripts/test.sh does so in the background while the tests run).
# UVMM_PKGTEST_KEEP=1 keeps the work directory; UVMM_PKGTEST_CACHE=0 ignores the cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_root

# ---------------------------------------------------------------------------------------
# Results. Every check prints one line; the last line counts them.
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
# same DESCRIPTION WANT GOT
same() {
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}
contains() { # contains DESCRIPTION TEXT NEEDLE
    if grep -qF -- "$3" <<<"$2"; then ok "$1"; else bad "$1: '$3' not in: $(head -c 600 <<<"$2")"; fi
}
t0=$(date +%s)
step_started=$t0
declare -a timings=()
step() {
    local now
    now=$(date +%s)
    timings+=("$(printf '%-40s %4d s' "$current_step" $((now - step_started)))")
    step_started=$now
    current_step=$1
    echo "==> $1"
}
current_step="(start)"

for tool in debootstrap lintian systemd-nspawn nsenter unshare ip man groff bash zsh fish \
    dpkg-buildpackage dh; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing: run ./scripts/test.sh, which installs what these tests need"
done

work=$(mktemp -d /var/tmp/uvmm-pkgtest.XXXXXX)
root=$work/root
holder_pid=""
nspawn_pid=""
cleanup() {
    stop_container || true
    stop_holder || true
    if [ "${UVMM_PKGTEST_KEEP:-0}" = 1 ]; then
        echo "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
# A command outside a check that fails ends the run (set -e); say which.
trap 'echo "FAIL aborted at line $LINENO: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------------------------------
step "build the packages (older version, then this one)"
# scripts/test.sh builds them while the workspace's tests run (build_test_packages in
# scripts/lib.sh, the same two builds) and passes the directory in UVMM_PKGTEST_DEBS.
if [ -n "${UVMM_PKGTEST_DEBS:-}" ]; then
    [ -f "$UVMM_PKGTEST_DEBS/build-times" ] ||
        die "UVMM_PKGTEST_DEBS=$UVMM_PKGTEST_DEBS holds no finished build (build_test_packages)"
    cp -a "$UVMM_PKGTEST_DEBS/old" "$UVMM_PKGTEST_DEBS/new" "$work/"
    read -r build_old_secs build_new_secs <"$UVMM_PKGTEST_DEBS/build-times"
    built_where="built by scripts/test.sh while the tests ran"
else
    build_test_packages "$work"
    read -r build_old_secs build_new_secs <"$work/build-times"
    built_where="built here"
fi
packages="uvmm-daemon uvmm-client uvmm-restore uvmm-nagios-plugin"
deb_version() { dpkg-deb -f "$(ls "$1"/uvmm-daemon_*.deb)" Version; }
old_version=$(deb_version "$work/old")
new_version=$(deb_version "$work/new")
check "4 packages of each version were built" \
    test "$(ls "$work"/old/*.deb | wc -l)" = 4 -a "$(ls "$work"/new/*.deb | wc -l)" = 4
check "the older build ($old_version) sorts before this one ($new_version)" \
    dpkg --compare-versions "$old_version" lt "$new_version"
for p in uvmm-daemon uvmm-restore uvmm-nagios-plugin; do
    contains "$p depends on libvirt0 (dpkg-shlibdeps)" \
        "$(dpkg-deb -f "$work"/new/"$p"_*.deb Depends)" "libvirt0"
done

step "lintian"
# spelling-error-in-binary reads every byte run of a binary as text: in Rust machine code
# random bytes look like words (one build showed "wTH" as a misspelled "with"), so its hits
# change from build to build and an override would soon be unused (itself a tag). The texts
# users read are checked where they are: the man pages (lintian's manpage checks, below)
# and --help (the man page checks of this script).
if lintian_out=$(lintian -I -E --pedantic --fail-on error,warning,info,pedantic,experimental \
    --suppress-tags spelling-error-in-binary "$work"/new/*.deb 2>&1); then
    ok "lintian reports nothing (every remaining tag is overridden with its reason)"
else
    bad "lintian: $lintian_out"
fi

# ---------------------------------------------------------------------------------------
step "man pages and completions against --help"
extract=$work/extract
for deb in "$work"/new/*.deb; do dpkg-deb -x "$deb" "$extract"; done
pages_checked=0
# check_page PROGRAM SECTION WORD...: the page of "PROGRAM WORD..." renders without
# warnings, shows every long option of --help, and names a page for every subcommand of
# --help, each of which is checked in turn.
check_page() {
    local bin=$1 section=$2
    shift 2
    local name page help text sub opt lacking=""
    name=$(basename "$bin")
    page=$(printf '%s' "$name" "${@/#/-}")
    local file=$extract/usr/share/man/man$section/$page.$section.gz
    help=$("$bin" "$@" --help 2>&1) || { bad "$name $* --help fails"; return; }
    if [ ! -f "$file" ]; then
        bad "man page $page($section) is missing"
        return
    fi
    # lintian's own check: groff's warnings are errors.
    local warnings
    warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$file" 2>&1 >/dev/null)
    [ -z "$warnings" ] || bad "$page($section) renders with warnings: $warnings"
    # Wide enough that no option is hyphenated across lines.
    text=$(MANWIDTH=400 man -l "$file" 2>/dev/null | col -b)
    for opt in $(sed -n '/^Options:/,$p' <<<"$help" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
        grep -qF -- "$opt" <<<"$text" || lacking+=" $opt"
    done
    for sub in $(sed -n '/^Commands:/,/^$/p' <<<"$help" | awk 'NR > 1 && NF { print $1 }'); do
        [ "$sub" = help ] && continue
        grep -qF -- "$page-$sub($section)" <<<"$text" || lacking+=" $page-$sub($section)"
        check_page "$bin" "$section" "$@" "$sub"
    done
    if [ -n "$lacking" ]; then
        bad "$page($section) lacks what --help lists:$lacking"
    else
        pages_checked=$((pages_checked + 1))
    fi
}
check_page "$extract/usr/sbin/uvmmd" 8
check_page "$extract/usr/bin/uvmm" 1
check_page "$extract/usr/sbin/uvmm-restore" 8
check_page "$extract/usr/lib/nagios/plugins/check_uvmm" 1
shipped_pages=$(find "$extract/usr/share/man" -name '*.gz' -type f | wc -l)
same "every shipped man page matches a command of --help, and all render cleanly" \
    "$shipped_pages" "$pages_checked"
check "univention-virtual-machine-manager-restore(8) is the page of uvmm-restore" \
    test "$(readlink "$extract/usr/share/man/man8/univention-virtual-machine-manager-restore.8.gz")" = uvmm-restore.8.gz
contains "uvmmd(8) names /etc/default/uvmmd" \
    "$(man -l "$extract/usr/share/man/man8/uvmmd.8.gz" 2>/dev/null)" "/etc/default/uvmmd"

completions=$extract/usr/share
for cmd in uvmm uvmmd uvmm-restore univention-virtual-machine-manager-restore; do
    check "bash completion of $cmd loads" bash -c \
        "source '$completions/bash-completion/completions/$cmd' && complete -p '$cmd' >/dev/null"
    check "zsh completion of $cmd parses" zsh -n "$completions/zsh/vendor-completions/_$cmd"
    check "fish completion of $cmd parses" fish --no-execute "$completions/fish/vendor_completions.d/$cmd.fish"
done
reply=$(bash -c "source '$completions/bash-completion/completions/uvmm'
    COMP_WORDS=(uvmm vm st); COMP_CWORD=2; _uvmm uvmm st vm; echo \"\${COMPREPLY[*]}\"")
contains "bash completes 'uvmm vm st' with start and stop" "$reply" "start stop"

# ---------------------------------------------------------------------------------------
# A clean Debian 12 root. debootstrap takes about 30 s here; its result is cached as a
# tar file in a root-only directory, which is safe because: only root can write there
# (checked before use), the file is written to a temporary name and renamed under a lock
# (concurrent runs on the same machine never read half a file), it is rebuilt when older
# than a week (Debian's point releases move on) or when the root it gives fails the
# checks below, and a missing or unusable cache only means running debootstrap again.
step "a clean Debian 12 root (debootstrap --variant=minbase)"
mirror=${UVMM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache_dir=/var/cache/uvmm-tests
cache_key="bookworm-$(dpkg --print-architecture)-minbase-debootstrap_$(dpkg-query -W -f='${Version}' debootstrap)"
cache_file=$cache_dir/$cache_key.tar
root_is_sane() {
    grep -q '^12\.' "$1/etc/debian_version" 2>/dev/null &&
        [ -x "$1/usr/bin/apt-get" ] &&
        [ -z "$(chroot "$1" dpkg --audit 2>&1)" ]
}
cache_usable() {
    [ "${UVMM_PKGTEST_CACHE:-1}" != 0 ] &&
        [ -d "$cache_dir" ] && [ "$(stat -c '%u %a' "$cache_dir")" = "0 700" ] &&
        [ -f "$cache_file" ] && [ "$(stat -c %u "$cache_file")" = 0 ] &&
        [ -n "$(find "$cache_file" -mtime -7)" ]
}
debootstrap_secs=""
root_from=""
if cache_usable && mkdir "$root" && tar -C "$root" -xpf "$cache_file" && root_is_sane "$root"; then
    root_from="cache ($cache_file)"
else
    rm -rf "$root"
    ds_started=$(date +%s)
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -20 "$work/debootstrap.log"; die "debootstrap failed (mirror $mirror)"; }
    debootstrap_secs=$(($(date +%s) - ds_started))
    root_from="debootstrap ($debootstrap_secs s)"
    chroot "$root" apt-get clean
    root_is_sane "$root" || die "the debootstrapped root fails its checks"
    if [ "${UVMM_PKGTEST_CACHE:-1}" != 0 ]; then
        install -d -m 0700 -o root -g root "$cache_dir"
        (
            flock 9
            tmp=$(mktemp "$cache_dir/.tmp.XXXXXX")
            tar -C "$root" -cf "$tmp" . && mv "$tmp" "$cache_file" || rm -f "$tmp"
            # Roots of older debootstrap versions are of no use any more.
            find "$cache_dir" -maxdepth 1 -name '*.tar' ! -name "$cache_key.tar" -delete
        ) 9>"$cache_dir/.lock"
    fi
fi
echo "    root from $root_from"
# Not below /tmp: the booted container mounts a tmpfs there.
mkdir -p "$root/srv/debs"
cp -a "$work/old" "$work/new" "$root/srv/debs/"

# A holder process owns private mount, network and PID namespaces for the root: /proc is
# mounted there, uvmmd's TCP port 2106 is its own (other tests on this machine use the
# host's), and every process started in the root dies with the holder.
start_holder() {
    unshare --mount --net --pid --fork --kill-child --propagation private \
        --mount-proc="$root/proc" bash -c 'ip link set lo up || exit 1
            # PID 1 of the namespace: bash reaps the orphans (uvmmd -d leaves its parent).
            while :; do sleep 3600 & wait $!; done' 2>>"$work/holder.log" &
    local unshare_pid=$!
    for _ in $(seq 50); do
        holder_pid=$(pgrep -P "$unshare_pid" || true)
        [ -n "$holder_pid" ] && return 0
        sleep 0.1
    done
    die "the namespace holder did not start"
}
stop_holder() {
    [ -n "$holder_pid" ] || return 0
    # PID 1 of a namespace ignores signals it has no handler for, but not SIGKILL; the
    # kernel then kills everything else in the namespace.
    kill -KILL "$holder_pid" 2>/dev/null || true
    holder_pid=""
    wait 2>/dev/null || true
}
# in_root CMD...: run in the root, offline (private network).
in_root() { nsenter -t "$holder_pid" -m -n -p -- chroot "$root" /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
# online CMD...: the same with the host's network (apt).
online() { nsenter -t "$holder_pid" -m -p -- chroot "$root" /usr/bin/env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
start_holder
# debs VERSION [PACKAGE...]: the package files of a build, as paths inside the root.
debs() {
    local dir=$1 pkg
    shift
    # shellcheck disable=SC2086 # the list of all four, one word each
    [ $# -gt 0 ] || set -- $packages
    for pkg in "$@"; do
        (cd "$root" && find srv/debs/"$dir" -name "${pkg}_*.deb") | sed 's|^|/|'
    done
}

step "install into the clean root with apt (Depends from the mirror)"
online apt-get update -qq >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; die "apt-get update failed"; }
# shellcheck disable=SC2046
if online apt-get install -y -q $(debs new) >>"$work/apt.log" 2>&1; then
    ok "apt installs the four packages into a minimal Debian 12, resolving their Depends"
else
    bad "apt install: $(tail -20 "$work/apt.log")"
    die "nothing else can be tested without the packages installed"
fi
for p in $packages; do
    same "$p is installed at $new_version" "ii $new_version" \
        "$(in_root dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$p" | tr -s ' ')"
done
check "apt-get check: every dependency is satisfied" in_root apt-get check -qq
same "dpkg --audit finds nothing" "" "$(in_root dpkg --audit 2>&1)"
same "the installed files are the packages' (dpkg --verify)" "" "$(in_root dpkg --verify $packages 2>&1)"
check "logrotate came along (Recommends)" in_root test -x /usr/sbin/logrotate

step "files, modes, groups, conffiles"
mode_of() { in_root stat -c '%a %U:%G' "$1" 2>&1; }
for f in /usr/sbin/uvmmd /usr/bin/uvmm /usr/sbin/uvmm-restore /usr/lib/nagios/plugins/check_uvmm; do
    same "$f is 0755 root:root" "755 root:root" "$(mode_of "$f")"
done
same "univention-virtual-machine-manager-restore is uvmm-restore" "uvmm-restore" \
    "$(in_root readlink /usr/sbin/univention-virtual-machine-manager-restore)"
for f in /lib/systemd/system/uvmmd.service /usr/lib/tmpfiles.d/uvmm-daemon.conf \
    /etc/logrotate.d/uvmm-daemon /etc/pam.d/uvmm /etc/default/uvmmd /etc/uvmm/uvmmd.toml \
    /etc/uvmm/profiles.d/linux.toml /etc/uvmm/profiles.d/windows.toml \
    /etc/uvmm/profiles.d/linux-xen-pv.toml /etc/uvmm/profiles.d/other.toml \
    /usr/share/man/man8/uvmmd.8.gz /usr/share/man/man1/uvmm.1.gz \
    /usr/share/man/man1/uvmm-vm-start.1.gz /usr/share/man/man8/uvmm-restore.8.gz \
    /usr/share/man/man1/check_uvmm.1.gz /usr/share/bash-completion/completions/uvmm \
    /usr/share/zsh/vendor-completions/_uvmm /usr/share/fish/vendor_completions.d/uvmm.fish \
    /usr/share/bash-completion/completions/univention-virtual-machine-manager-restore \
    /usr/share/doc/uvmm-daemon/README.Debian \
    /usr/share/doc/uvmm-nagios-plugin/examples/nrpe-uvmm.cfg \
    /usr/share/doc/uvmm-nagios-plugin/examples/icinga2-uvmm.conf; do
    same "$f is 0644 root:root" "644 root:root" "$(mode_of "$f")"
done
same "/var/lib/uvmm (state, API token) is 0700 root:root" "700 root:root" "$(mode_of /var/lib/uvmm)"
same "/var/backups/uvmm is 0700 root:root" "700 root:root" "$(mode_of /var/backups/uvmm)"
same "/var/log/uvmm is 0755 root:root" "755 root:root" "$(mode_of /var/log/uvmm)"
for g in uvmm-admin uvmm uvmm-viewer; do
    gid=$(in_root getent group "$g" | cut -d: -f3 || true)
    check "system group $g exists (gid $gid)" test -n "$gid" -a "${gid:-1000}" -lt 1000
done
same "conffiles of uvmm-daemon" \
    "/etc/default/uvmmd /etc/logrotate.d/uvmm-daemon /etc/pam.d/uvmm /etc/uvmm/profiles.d/linux-xen-pv.toml /etc/uvmm/profiles.d/linux.toml /etc/uvmm/profiles.d/other.toml /etc/uvmm/profiles.d/windows.toml /etc/uvmm/uvmmd.toml" \
    "$(in_root dpkg-query -W -f='${Conffiles}\n' uvmm-daemon | awk 'NF { print $1 }' | sort | xargs)"
for p in uvmm-client uvmm-restore uvmm-nagios-plugin; do
    same "$p has no conffiles" "" "$(in_root dpkg-query -W -f='${Conffiles}' "$p" | xargs)"
done

# ---------------------------------------------------------------------------------------
step "uvmmd started exactly as the unit's ExecStart, seed's DAEMON_OPTS"
unit=$root/lib/systemd/system/uvmmd.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
same "the unit starts /usr/sbin/uvmmd \$DAEMON_OPTS" '/usr/sbin/uvmmd $DAEMON_OPTS' "$exec_start"
same "the unit reads /etc/default/uvmmd" "-/etc/default/uvmmd" "$(sed -n 's/^EnvironmentFile=//p' "$unit")"
# The seed: DAEMON_OPTS="-s 0.0.0.0 -d" (and its standalone form with -b '' and a host):
# HTTPS on every address with a self-signed certificate. The later steps use plain HTTP
# on loopback (--plain-http); plain HTTP on 0.0.0.0 is what uvmmd refuses.
seed_opts="-s 0.0.0.0 -d -b '' test:///default"
test_opts="-s 127.0.0.1 -d -b '' --plain-http test:///default"
refused_opts="-s 0.0.0.0 -d -b '' --plain-http test:///default"
# run_exec_start OPTS: what systemd runs for ExecStart with DAEMON_OPTS=OPTS: the value
# split into words with quotes removed (systemd 252 does this; phase 4 shows it with the
# real systemd), no shell in between.
run_exec_start() {
    printf 'DAEMON_OPTS="%s"\n' "$1" >"$root/etc/default/uvmmd"
    in_root sh -c '. /etc/default/uvmmd; eval "set -- $DAEMON_OPTS"; exec '"${exec_start%% *}"' "$@"'
}
out=$(in_root uvmmd --check-config -s 0.0.0.0 -d 2>&1; echo "exit=$?")
contains "uvmmd --check-config accepts the seed's line (exit 0)" "$out" "exit=0"
contains "  ... and says it serves HTTPS" "$out" "0.0.0.0:2106 (HTTPS)"
out=$(in_root uvmmd --check-config -s 0.0.0.0 --plain-http 2>&1; echo "exit=$?")
contains "plain HTTP on 0.0.0.0 is refused (exit 1)" "$out" "exit=1"
contains "  ... with the reason" "$out" "only allowed on loopback"
if out=$(run_exec_start "$seed_opts" 2>&1); then
    ok "uvmmd with the seed's options ($seed_opts) detaches once its sockets are ready"
else
    bad "uvmmd $seed_opts: $out"
fi
fp=$(in_root uvmmd --show-fingerprint -s 0.0.0.0 2>&1) || true
contains "uvmmd --show-fingerprint prints the certificate's fingerprint" "$fp" "SHA256:"
contains "uvmm reaches it over HTTPS with the pinned fingerprint and the API token" \
    "$(in_root uvmm --url https://127.0.0.1:2106 --accept-fingerprint "$fp" vm list 2>&1)" "test"
contains "  ... and refuses a server it does not know" \
    "$(in_root uvmm --url https://127.0.0.1:2106 --known-hosts /tmp/none vm list 2>&1)" "not a known server"
same "the self-signed certificate's key is 0600" "600 root:root" "$(mode_of /var/lib/uvmm/tls/uvmmd.key)"
in_root sh -c 'kill "$(cat /run/uvmm/uvmmd.pid)"'
for _ in $(seq 100); do in_root test -e /run/uvmm/uvmm.sock || break; sleep 0.1; done
if out=$(run_exec_start "$test_opts" 2>&1); then
    ok "uvmmd $test_opts detaches once its sockets are ready (no systemd here)"
else
    bad "uvmmd $test_opts: $out"
fi
daemon_pid=$(in_root cat /run/uvmm/uvmmd.pid 2>/dev/null || true)
check "-d wrote the pid file /run/uvmm/uvmmd.pid" test -n "$daemon_pid"
contains "uvmm reaches it on the UNIX socket" "$(in_root uvmm host list 2>&1)" "test:///default"
contains "uvmm reaches it on TCP with the API token" \
    "$(in_root uvmm --url http://127.0.0.1:2106 vm list 2>&1)" "test"
same "the API token is 0600 in /var/lib/uvmm" "600 root:root" "$(mode_of /var/lib/uvmm/api-token)"
contains "check_uvmm daemon is OK" "$(in_root /usr/lib/nagios/plugins/check_uvmm daemon 2>&1)" "UVMM DAEMON OK"
in_root uvmm vm set test description=first >/dev/null
in_root uvmm vm set test description=second >/dev/null
# Runtime changes are kept in hosts.json (qemu:///system is unreachable here, and kept).
in_root uvmm host add qemu:///system >/dev/null 2>&1 || true
contains "uvmm-restore lists the backups uvmmd made" "$(in_root uvmm-restore -l 2>&1)" "test"
contains "univention-virtual-machine-manager-restore too" \
    "$(in_root univention-virtual-machine-manager-restore -l 2>&1)" "test"
contains "uvmmd logs to /var/log/uvmm/uvmmd.log with -d" "$(in_root cat /var/log/uvmm/uvmmd.log)" "ready"
same "the log file is 0640" "640 root:root" "$(mode_of /var/log/uvmm/uvmmd.log)"
# logrotate's postrotate sends SIGHUP through the pid file when systemd does not run uvmmd.
in_root logrotate -f /etc/logrotate.d/uvmm-daemon
check "logrotate rotated the log" in_root test -f /var/log/uvmm/uvmmd.log.1
for _ in $(seq 50); do in_root grep -q "log file reopened" /var/log/uvmm/uvmmd.log 2>/dev/null && break; sleep 0.1; done
contains "uvmmd writes to the new log after logrotate's SIGHUP" \
    "$(in_root cat /var/log/uvmm/uvmmd.log 2>&1)" "SIGHUP: log file reopened"
in_root kill "$daemon_pid"
for _ in $(seq 100); do in_root kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM stops uvmmd and removes its socket" in_root test ! -e /run/uvmm/uvmm.sock

# ---------------------------------------------------------------------------------------
step "remove keeps data, purge keeps only the backups"
manifest() { in_root sh -c "cd '$1' && find . -type f -print0 | sort -z | xargs -0 sha256sum"; }
backups_before=$(manifest /var/backups/uvmm) || true
check "uvmmd made backup versions to keep" test "$(grep -c . <<<"$backups_before")" -ge 3
online apt-get remove -y -q uvmm-daemon >>"$work/apt.log" 2>&1
same "remove: the package is 'rc' (removed, configuration kept)" "rc" \
    "$(in_root dpkg-query -W -f='${db:Status-Abbrev}' uvmm-daemon | tr -d ' ')"
check "remove: uvmmd is gone" in_root test ! -e /usr/sbin/uvmmd
for f in /etc/uvmm/uvmmd.toml /etc/default/uvmmd /var/lib/uvmm/api-token /var/lib/uvmm/hosts.json \
    /var/log/uvmm/uvmmd.log; do
    check "remove keeps $f" in_root test -e "$f"
done
same "remove keeps every backup" "$backups_before" "$(manifest /var/backups/uvmm)"
purge_out=$(online apt-get purge -y -q uvmm-daemon 2>&1) || true
for f in /etc/uvmm /etc/default/uvmmd /var/lib/uvmm /var/log/uvmm; do
    check "purge deletes $f" in_root test ! -e "$f"
done
same "purge keeps every backup (no PURGE-WITH-PACKAGE)" "$backups_before" "$(manifest /var/backups/uvmm)"
contains "purge says where the backups stay" "$purge_out" "stay in /var/backups/uvmm"
for g in uvmm-admin uvmm uvmm-viewer; do
    check "purge keeps group $g" in_root sh -c "getent group $g >/dev/null"
done
online apt-get install -y -q "$(debs new uvmm-daemon)" >>"$work/apt.log" 2>&1
same "a reinstall finds the kept backups" "$backups_before" "$(manifest /var/backups/uvmm)"
in_root touch /var/backups/uvmm/PURGE-WITH-PACKAGE
online apt-get purge -y -q uvmm-daemon >>"$work/apt.log" 2>&1
check "purge with /var/backups/uvmm/PURGE-WITH-PACKAGE deletes the backups" \
    in_root test ! -e /var/backups/uvmm
online apt-get purge -y -q uvmm-client uvmm-restore uvmm-nagios-plugin >>"$work/apt.log" 2>&1
same "nothing of the packages is left" "" \
    "$(in_root dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'uvmm*' 2>/dev/null | grep -v '^un' || true)"
check "no uvmm file is left but the packages' own" \
    test -z "$(find "$root/usr" "$root/etc" "$root/lib" -name '*uvmm*' 2>/dev/null)"

# ---------------------------------------------------------------------------------------
step "boot the root with systemd (systemd-nspawn)"
# systemd, a libvirtd (its QEMU driver needs the libvirt-qemu user that
# libvirt-daemon-system would make) for uvmmd to reach through /run/libvirt/libvirt-sock,
# and man-db (systemd-analyze verify checks Documentation=man:uvmmd(8)).
online apt-get install -y -q --no-install-recommends systemd systemd-sysv libvirt-daemon man-db \
    >>"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log"; die "installing systemd in the root failed"; }
in_root sh -c 'addgroup --system --quiet libvirt-qemu &&
    adduser --system --quiet --ingroup libvirt-qemu --no-create-home libvirt-qemu'
cat >"$root/etc/systemd/system/libvirtd.service" <<'EOF'
# libvirt-daemon without libvirt-daemon-system has no unit: the test's own.
[Unit]
Description=libvirtd for the packaging tests
[Service]
Type=notify
ExecStart=/usr/sbin/libvirtd
[Install]
WantedBy=multi-user.target
EOF
in_root systemctl enable libvirtd.service >/dev/null 2>&1
stop_holder

leader=""
start_container() {
    systemd-nspawn -q -b -D "$root" --register=no --keep-unit --private-network \
        --console=passive >>"$work/nspawn.log" 2>&1 &
    nspawn_pid=$!
    leader=""
    for _ in $(seq 100); do
        leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
        [ -n "$leader" ] && break
        sleep 0.1
    done
    [ -n "$leader" ] || die "systemd did not start in the container: $(tail -5 "$work/nspawn.log")"
    # Until the boot is done ("degraded" is fine here: uvmmd is checked itself). Early on
    # systemctl cannot even connect, so ask again.
    local state=""
    for _ in $(seq 600); do
        state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)
        case $state in running | degraded) return 0 ;; esac
        sleep 0.1
    done
    die "the container did not finish booting (state '$state')"
}
stop_container() {
    [ -n "$nspawn_pid" ] || return 0
    # SIGTERM makes systemd-nspawn ask the container's systemd to power off.
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
    nspawn_pid=""
    leader=""
}
# box CMD...: run in the booted container.
box() { nsenter -t "$leader" -a -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
start_container
same "systemd runs as PID 1 in the container" "systemd" "$(box cat /proc/1/comm)"
same "libvirtd runs under systemd" "active" "$(box systemctl is-active libvirtd)"

step "install under systemd: enabled, started, Type=notify"
# shellcheck disable=SC2046
out=$(box dpkg -i $(debs old) 2>&1) || die "dpkg -i of the older packages: $out"
verify=$(box systemd-analyze verify /lib/systemd/system/uvmmd.service 2>&1) &&
    ok "systemd-analyze verify uvmmd.service: no complaints" ||
    bad "systemd-analyze verify: $verify"
[ -z "$verify" ] || bad "systemd-analyze verify printed: $verify"
same "the package enabled uvmmd.service" "enabled" "$(box systemctl is-enabled uvmmd)"
same "the package started uvmmd.service (deb-systemd-invoke)" "active" "$(box systemctl is-active uvmmd)"
same "Type=notify" "notify" "$(box systemctl show -p Type --value uvmmd)"
# The seed's options with loopback; -b '' shows that systemd removes the quotes.
printf 'DAEMON_OPTS="%s"\n' "-s 127.0.0.1 -d -b '' --plain-http test+unix:///default" >"$root/etc/default/uvmmd"
box systemctl restart uvmmd
ready_pid=$(box systemctl show -p MainPID --value uvmmd || true)
# A reload right after READY=1 finds the SIGHUP handler in place (not SIGHUP's default,
# which would end uvmmd).
box systemctl reload uvmmd
same "a reload right after the start leaves uvmmd running" "active $ready_pid" \
    "$(box systemctl is-active uvmmd) $(box systemctl show -p MainPID --value uvmmd)"
# "systemctl restart" returns only after READY=1, so the sockets must answer right now.
contains "right after systemctl restart (READY=1) the socket answers, libvirtd's host connected" \
    "$(box uvmm host list 2>&1)" "connected"
contains "... and TCP with the token" "$(box uvmm --url http://127.0.0.1:2106 host list 2>&1)" "test+unix"
main_pid=$(box systemctl show -p MainPID --value uvmmd) || true
contains "MainPID is uvmmd itself, started with -d: it did not fork under systemd" \
    "$(box ps -o args= -p "$main_pid") " "/usr/sbin/uvmmd -s 127.0.0.1 -d -b "
contains "READY=1 carried a status" "$(box systemctl show -p StatusText --value uvmmd)" "serving 1 configured hosts"
same "systemd passed -b '' as an empty word (as the seed's standalone line needs)" "" \
    "$(box sh -c "tr '\\0' '\\n' </proc/$main_pid/cmdline | sed -n '6p'")"

step "hardening in effect, and what uvmmd needs still works"
status=$(box cat "/proc/$main_pid/status") || true
contains "NoNewPrivileges" "$status" "NoNewPrivs:	1"
contains "seccomp filters (SystemCallArchitectures, RestrictAddressFamilies, ...)" "$status" "Seccomp:	2"
# mount_mode PID PATH: ro or rw, as the process sees PATH (the mount it lies on).
mount_mode() {
    box cat "/proc/$1/mountinfo" | awk -v path="$2" '
        { m = $5; if ((path == m || index(path, m == "/" ? "/" : m "/") == 1) && length(m) >= best) {
            best = length(m); mode = substr($6, 1, 2) } }
        END { print mode }'
}
# read_only WHAT PATH: uvmmd sees PATH read-only where the container's PID 1 does not.
read_only() {
    local inside outside
    inside=$(mount_mode "$main_pid" "$2")
    outside=$(mount_mode 1 "$2")
    if [ "$inside" = ro ] && [ "$outside" = rw ]; then
        ok "$1: uvmmd sees $2 read-only"
    elif [ "$inside" = ro ]; then
        echo "note $1: $2 is read-only for uvmmd, but already for the whole container (systemd-nspawn)"
    else
        bad "$1: uvmmd sees $2 $inside"
    fi
}
read_only "ProtectSystem=strict" /usr
read_only "ProtectSystem=strict" /etc
read_only "ProtectSystem=strict" /var/lib/dpkg
read_only "ProtectHome=read-only (ssh keys stay readable)" /root
read_only "ProtectKernelTunables" /proc/sys/kernel
read_only "ProtectControlGroups" /sys/fs/cgroup
for d in /var/lib/uvmm /var/backups/uvmm /var/log/uvmm /run/uvmm; do
    same "$d is writable for uvmmd" "rw" "$(mount_mode "$main_pid" "$d")"
done
box touch /tmp/outside-uvmmd
check "PrivateTmp: uvmmd's /tmp is its own" \
    box sh -c "test -e /tmp/outside-uvmmd && test ! -e /proc/$main_pid/root/tmp/outside-uvmmd"
# systemd cannot raise a limit above the container's own (systemd-nspawn keeps the host's
# hard limit and drops CAP_SYS_RESOURCE), so the unit's 65536 is capped at that.
pid1_hard=$(box awk '/^Max open files/ { print $5 }' /proc/1/limits || true)
want_nofile=$((pid1_hard < 65536 ? pid1_hard : 65536))
[ "$want_nofile" = 65536 ] ||
    echo "note LimitNOFILE=65536 is capped at the container's hard limit $pid1_hard here"
same "LimitNOFILE, and uvmmd raised its soft limit to it" "$want_nofile $want_nofile" \
    "$(box awk '/^Max open files/ { print $4, $5 }' "/proc/$main_pid/limits")"
box uvmm host add qemu:///system >/dev/null 2>&1 || true
contains "qemu:///system through /run/libvirt/libvirt-sock connects" "$(box uvmm host list 2>&1)" "qemu:///system"
contains "hosts.json written in the state directory" "$(box cat /var/lib/uvmm/hosts.json)" "qemu:///system"
box uvmm vm set test description=v1 >/dev/null
box uvmm vm set test description=v2 >/dev/null
versions=$(box sh -c 'ls /var/backups/uvmm/*/*.meta.json | wc -l') || true
check "backup versions written to /var/backups/uvmm ($versions)" test "$versions" -ge 2
box systemctl reload uvmmd
for _ in $(seq 50); do box grep -q "log file reopened" /var/log/uvmm/uvmmd.log && break; sleep 0.1; done
contains "systemctl reload sends SIGHUP: the log file is reopened" \
    "$(box cat /var/log/uvmm/uvmmd.log)" "SIGHUP: log file reopened"
box logrotate -f /etc/logrotate.d/uvmm-daemon
for _ in $(seq 50); do box test -s /var/log/uvmm/uvmmd.log && break; sleep 0.1; done
contains "logrotate reloads uvmmd through systemd; it writes to the new file" \
    "$(box cat /var/log/uvmm/uvmmd.log 2>&1)" "SIGHUP: log file reopened"
check "... and the old one is kept as uvmmd.log.1" box test -f /var/log/uvmm/uvmmd.log.1

step "Restart=on-failure and ExecStartPre --check-config"
box kill -9 "$main_pid"
for _ in $(seq 100); do
    new_pid=$(box systemctl show -p MainPID --value uvmmd) || true
    [ "$new_pid" != 0 ] && [ "$new_pid" != "$main_pid" ] && [ "$(box systemctl is-active uvmmd)" = active ] && break
    sleep 0.1
done
check "a killed uvmmd is restarted by systemd" test "$new_pid" != "$main_pid" -a "$new_pid" != 0
same "NRestarts counts it" "1" "$(box systemctl show -p NRestarts --value uvmmd)"
cp "$root/etc/default/uvmmd" "$work/default.good"
printf 'DAEMON_OPTS="%s"\n' "$refused_opts" >"$root/etc/default/uvmmd"
if box systemctl restart uvmmd >/dev/null 2>&1; then
    bad "a refused configuration should fail the start"
else
    ok "a configuration uvmmd refuses fails the start"
fi
contains "the journal says why (ExecStartPre --check-config)" \
    "$(box journalctl -u uvmmd --no-pager -n 30 2>&1)" "configuration invalid"
cp "$work/default.good" "$root/etc/default/uvmmd"
box systemctl reset-failed uvmmd
box systemctl restart uvmmd
same "with the configuration fixed it starts again" "active" "$(box systemctl is-active uvmmd)"

# ---------------------------------------------------------------------------------------
step "upgrade $old_version -> $new_version with live data"
printf '# changed by the administrator\nbackup_keep_versions = 50\n' >>"$root/etc/uvmm/uvmmd.toml"
box uvmm vm set test description=v3 >/dev/null
kept="/var/lib/uvmm/hosts.json /var/lib/uvmm/api-token /etc/uvmm/uvmmd.toml /etc/default/uvmmd"
# Every version file (UUID/NNNNNN.xml and .meta.json) and the other kept files. UUID.xml
# is the copy of a VM's latest version and follows new versions: the restarted uvmmd may
# add one (libvirtd's test driver forgets the test VM's changes when uvmmd disconnects).
snapshot() {
    box sh -c "cd /var/backups/uvmm && find . -mindepth 2 -type f -print0 | sort -z | xargs -0 sha256sum"
    box sha256sum $kept
}
before=$(snapshot) || true
pid_before=$(box systemctl show -p MainPID --value uvmmd) || true
starts() { box grep -cE "uvmmd [0-9][^ ]* ready" /var/log/uvmm/uvmmd.log; }
starts_before=$(starts) || true
# shellcheck disable=SC2046
out=$(box dpkg -i $(debs new) 2>&1) &&
    ok "dpkg -i upgrades the four packages" || bad "upgrade: $out"
for p in $packages; do
    same "$p is at $new_version" "$new_version" "$(box dpkg-query -W -f='${Version}' "$p")"
done
after=$(snapshot) || true
lost=$(comm -23 <(sort <<<"$before") <(sort <<<"$after")) || true
same "every backup version, hosts.json, the API token and both changed conffiles are kept unchanged" "" "$lost"
check "there were $(grep -c ' \./' <<<"$before") backup version files to keep" test "$(grep -c ' \./' <<<"$before")" -ge 6
latest_ok=$(box sh -c 'cd /var/backups/uvmm && for d in */; do d=${d%/}
    last=$(ls "$d" | grep -E "^[0-9]+\.xml$" | sort | tail -1); cmp -s "$d.xml" "$d/$last" || echo "$d"; done')
same "each UUID.xml is still its VM's latest version" "" "$latest_ok"
for _ in $(seq 100); do [ "$(box systemctl is-active uvmmd)" = active ] && break; sleep 0.1; done
pid_after=$(box systemctl show -p MainPID --value uvmmd) || true
check "uvmmd was restarted (MainPID $pid_before -> $pid_after)" test "$pid_after" != "$pid_before"
same "exactly once: one more start in the log" "$((starts_before + 1))" "$(starts)"
contains "the upgraded uvmmd answers with the kept hosts" "$(box uvmm host list 2>&1)" "qemu:///system"
contains "... and the kept token" "$(box uvmm --url http://127.0.0.1:2106 host list 2>&1)" "test+unix"
contains "... and lists the kept backups" "$(box uvmm-restore -l 2>&1)" "test"

step "an upgrade whose uvmmd refuses the configuration does not restart it"
printf 'DAEMON_OPTS="%s"\n' "$refused_opts" >"$root/etc/default/uvmmd"
pid_before=$(box systemctl show -p MainPID --value uvmmd) || true
out=$(box dpkg -i "$(debs new uvmm-daemon)" 2>&1) || bad "reinstall: $out"
contains "the postinst says why it does not restart uvmmd" "$out" "uvmmd is not restarted"
contains "  ... with uvmmd's reason" "$out" "only allowed on loopback"
same "the running uvmmd goes on (same MainPID)" "$pid_before" "$(box systemctl show -p MainPID --value uvmmd)"
contains "  ... and answers" "$(box uvmm host list 2>&1)" "connected"
cp "$work/default.good" "$root/etc/default/uvmmd"

step "reboot: uvmmd starts at boot"
stop_container
start_container
same "after a reboot uvmmd.service is active" "active" "$(box systemctl is-active uvmmd)"
contains "it reconnected the kept hosts" "$(box uvmm host list 2>&1)" "qemu:///system"
box systemctl stop uvmmd
box rm -rf /run/uvmm
box systemd-tmpfiles --create uvmm-daemon.conf
same "the tmpfiles.d entry makes /run/uvmm" "755 root:root" "$(box stat -c '%a %U:%G' /run/uvmm)"
box systemctl start uvmmd

step "remove and purge under systemd"
box apt-get remove -y -q uvmm-daemon >>"$work/apt.log" 2>&1
same "remove stops uvmmd.service" "inactive" "$(box systemctl is-active uvmmd)"
check "no uvmmd process is left" test -z "$(box pgrep -x uvmmd || true)"
check "remove keeps the state" box test -f /var/lib/uvmm/api-token
backups=$(box sh -c "cd /var/backups/uvmm && find . -type f | sort | xargs sha256sum") || true
box apt-get purge -y -q uvmm-daemon >>"$work/apt.log" 2>&1
check "purge removes the unit's enablement" box test ! -e /etc/systemd/system/multi-user.target.wants/uvmmd.service
check "purge deletes the state" box test ! -e /var/lib/uvmm
same "purge keeps the backups" "$backups" "$(box sh -c "cd /var/backups/uvmm && find . -type f | sort | xargs sha256sum")"
stop_container

# ---------------------------------------------------------------------------------------
step "done"
echo "--- times"
printf '    %s\n' "${timings[@]}"
echo "    package builds ($built_where): older $build_old_secs s (includes the release build when it is stale), this one $build_new_secs s"
echo "    clean root from $root_from; all package tests $(($(date +%s) - t0)) s"
echo "packaging: $passed passed, $failed failed"
if [ "$failed" != 0 ]; then exit 1; fi
