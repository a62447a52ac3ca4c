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
    apt_install ca-certificates curl gcc libc6-dev pkg-config libvirt-dev libvirt0
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
}

# What the packaging tests (packaging/tests/run.sh) need: the package build (debhelper),
# lintian, debootstrap for a clean Debian 12 root, systemd-nspawn to boot it with systemd,
# man/groff to render the man pages, and zsh and fish to parse their completions.
install_package_test_deps() {
    install_build_deps
    APT_NO_RECOMMENDS=1 apt_install debhelper dpkg-dev lintian debootstrap systemd \
        systemd-container man-db groff-base iproute2 util-linux zsh fish
}
