# Shared helpers of the project's scripts. Everything here is idempotent: a second run
# installs nothing new and takes seconds.

die() { echo "error: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "run this as root (it installs Debian packages and starts daemons)"
}

# Install Debian packages that are missing; `apt-get update` only when something is.
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    local opts=()
    [ -n "${APT_NO_RECOMMENDS:-}" ] && opts+=(--no-install-recommends)
    apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
}

# Build tools and the libvirt client library (libvirt 9.0 on Debian 12).
install_build_deps() {
    need_root
    # libpam0g-dev: uvmm-auth links libpam (logins of local accounts).
    apt_install ca-certificates curl gcc libc6-dev pkg-config libvirt-dev libvirt0 libpam0g-dev
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] || {
            echo "==> installing the Rust toolchain (rustup, stable, minimal profile)"
            curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
        }
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
}

# What the tests need beyond the build: a real libvirtd with the QEMU driver and QEMU
# itself (libvirt-daemon-system creates the libvirt-qemu user the QEMU driver needs),
# virsh, xmllint for virt-xml-validate, unshare/setpriv, qemu-img.
install_test_deps() {
    install_build_deps
    apt_install libvirt-daemon libvirt-daemon-system libvirt-daemon-driver-qemu \
        qemu-system-x86 libvirt-clients libxml2-utils util-linux
    # libvirt-daemon pulls Debian's QEMU 7.2, which replaces the image's backported
    # qemu-utils 10; put the matching stock qemu-utils back.
    apt_install qemu-utils
    # Storage and monitoring tests: a user-space iSCSI target (tgt), libvirt's libiscsi
    # pool backend, and promtool (in Debian's prometheus package) to check /metrics.
    APT_NO_RECOMMENDS=1 apt_install tgt libvirt-daemon-driver-storage-iscsi-direct prometheus
    # Directory tests (uvmm-directory): a real OpenLDAP slapd and its client tools, openssl
    # for the test CA of the TLS tests. The packaged slapd instance is not started; the
    # tests start their own on 127.0.0.1.
    apt_install slapd ldap-utils openssl
    # The API fuzzing test (crates/uvmm-daemon/tests/schemathesis.rs) runs in a network
    # namespace of its own (unshare, nsenter, ip).
    apt_install iproute2
    install_schemathesis
    install_test_guest
}

# The tiny QEMU test guest of the migration, snapshot and clone tests
# (crates/uvmm-libvirt/tests/support/guest-image.sh): busybox-static for its initramfs and a
# Debian kernel, downloaded with `apt-get download` (nothing installed). Built once into
# target/uvmm-test-guest; the tests would build it too, this only fails early and clearly.
install_test_guest() {
    apt_install busybox-static
    if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    crates/uvmm-libvirt/tests/support/guest-image.sh "${CARGO_TARGET_DIR:-target}/uvmm-test-guest" \
        || die "could not build the test guest (kernel download or busybox-static)"
}

# cargo-fuzz (crates.io) for scripts/fuzz.sh, pinned like schemathesis; built from source
# with the machine's toolchain (a minute or two, once). The PAM tests of uvmm-auth create
# accounts with useradd, chpasswd, usermod, chage (Debian's passwd package).
CARGO_FUZZ_VERSION=0.13.2
install_fuzz_deps() {
    install_build_deps
    apt_install passwd
    if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
        echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
        cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
    fi
}

# schemathesis (PyPI) for the API fuzzing test, in its own virtualenv so that it cannot
# disturb Debian's Python. Pinned: a new release brings new checks, which should arrive
# through a change here, not as a surprise in CI. A second run only compares the version.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=/opt/uvmm-schemathesis
install_schemathesis() {
    local st="$SCHEMATHESIS_VENV/bin/st"
    if [ -x "$st" ] && [ "$("$st" --version 2>/dev/null)" = "st, version $SCHEMATHESIS_VERSION" ]; then
        return 0
    fi
    apt_install python3-venv
    echo "==> installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV"
    [ -x "$SCHEMATHESIS_VENV/bin/pip" ] || python3 -m venv "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
    "$st" --version >/dev/null || die "schemathesis did not install"
}

# The web UI (web/): Node.js 20.19 or newer with npm (Vite 8 needs it; the machines come
# with it, Debian 12's own nodejs is 18), the packages of web/package-lock.json, and the
# build into web/dist, which cargo embeds into uvmmd. UVMM_REQUIRE_WEB=1 makes a missing
# web/dist a build error instead of a "web UI not built" page.
build_web() {
    # Once per run: building again rewrites web/dist, and cargo then rebuilds uvmmd (the
    # packages' second release build took 149 s for that alone). scripts/test.sh builds
    # the UI first; the package builds it starts inherit UVMM_WEB_BUILT.
    if [ "${UVMM_WEB_BUILT:-}" = 1 ] && [ -f web/dist/index.html ]; then
        export UVMM_REQUIRE_WEB=1
        return 0
    fi
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
        die "the web UI needs Node.js 20.19+ and npm (https://nodejs.org/); they are not installed"
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
        die "the web UI needs Node.js 20.19 or newer; this is $(node --version)"
    echo "==> web UI: npm ci && npm run build (web/dist, embedded into uvmmd)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
    export UVMM_REQUIRE_WEB=1 UVMM_WEB_BUILT=1
}

# The browser tests drive Debian's Chromium (playwright-core cannot download a browser).
install_browser() {
    APT_NO_RECOMMENDS=1 apt_install chromium fonts-dejavu-core
}

# What the packaging tests (packaging/tests/run.sh) need: the package build (debhelper),
# lintian, debootstrap for a clean Debian 12 root, systemd-nspawn to boot it with systemd,
# man/groff to render the man pages, and zsh and fish to parse their completions.
install_package_test_deps() {
    install_build_deps
    APT_NO_RECOMMENDS=1 apt_install debhelper dpkg-dev lintian debootstrap systemd \
        systemd-container man-db groff-base iproute2 util-linux zsh fish
}

# The two package builds of the packaging tests (packaging/tests/run.sh): an older version
# (a version suffix) to upgrade from, then this one; OUT/old and OUT/new get the .deb files,
# OUT/build-{old,new}.log the output, OUT/build-times the seconds of each. The second build
# compiles nothing again (build-debs.sh builds in a staging directory of the same name).
build_test_packages() {
    local out=$1 t0 t1 t2
    mkdir -p "$out"
    # Here, not in each build-debs.sh: both builds inherit UVMM_WEB_BUILT and build the UI
    # no second time.
    build_web
    t0=$(date +%s)
    UVMM_DEB_VERSION_SUFFIX="~pkgtest.old" scripts/build-debs.sh "$out/old" >"$out/build-old.log" 2>&1 ||
        { tail -30 "$out/build-old.log"; die "building the older packages failed"; }
    t1=$(date +%s)
    scripts/build-debs.sh "$out/new" >"$out/build-new.log" 2>&1 ||
        { tail -30 "$out/build-new.log"; die "building the packages failed"; }
    t2=$(date +%s)
    echo "$((t1 - t0)) $((t2 - t1))" >"$out/build-times"
}
