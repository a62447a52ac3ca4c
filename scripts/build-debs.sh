#!/usr/bin/env bash
# Build the Debian 12 packages uvmm-daemon, uvmm-client, uvmm-restore and
# uvmm-nagios-plugin from this workspace, with dpkg-buildpackage and debhelper
# (packaging/debian/; docs/operations.md says why not cargo-deb).
#
#   scripts/build-debs.sh [OUTDIR]      the .deb files go to OUTDIR (default target/debian)
#
# UVMM_DEB_VERSION_SUFFIX=~rc1 builds version <changelog version>~rc1 (through a changelog
# entry in the staging copy only); the packaging tests build an older version this way.
# Run as root on Debian 12: it installs the build tools it lacks (debhelper, libvirt-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
workspace=$(pwd)
out=${1:-$workspace/target/debian}
suffix=${UVMM_DEB_VERSION_SUFFIX:-}
started=$(date +%s)

install_build_deps
apt_install debhelper dpkg-dev
# uvmmd embeds the web UI: build it (build_web also makes a missing UI a build error, so
# no package ships without it).
build_web

[[ "$suffix" =~ ^[A-Za-z0-9.+~]*$ ]] ||
    die "UVMM_DEB_VERSION_SUFFIX='$suffix': only letters, digits and . + ~ may follow a version"

# The package version is debian/changelog's; it must name the workspace's version, so
# that a release cannot ship binaries that call themselves something else.
changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
cargo_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
[ "${changelog_version%%-*}" = "$cargo_version" ] ||
    die "packaging/debian/changelog is at $changelog_version but the workspace at $cargo_version: add a changelog entry"
version=$changelog_version$suffix

# dpkg-buildpackage writes its work files into the tree it builds and its results next
# to it: build in a staging copy, never in the repository or beside it. The staging
# directory is always the same one, whatever the version and OUTDIR: dpkg-buildflags puts
# its path into CFLAGS (-ffile-prefix-map), cargo reruns the build scripts that compile C
# (ring) when CFLAGS change, and then rebuilds every crate above them — the packaging
# tests' second build (another version, another OUTDIR) compiled most of the workspace
# again. One build at a time per workspace, then.
# For the same reason every build gets the workspace changelog's date as
# SOURCE_DATE_EPOCH, which dpkg-buildpackage would otherwise take from the staging
# changelog (the older build's entry is dated now) and which ring's build script also
# watches.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l packaging/debian/changelog -S Timestamp)
export SOURCE_DATE_EPOCH
stage_parent=$workspace/target/debian-build
stage=$stage_parent/uvmm
mkdir -p "$stage_parent"
exec 9>"$stage_parent/.lock"
flock -n 9 || die "another scripts/build-debs.sh is building in this workspace ($stage_parent)"
rm -rf "$stage"
mkdir -p "$stage"
cp -a packaging/debian "$stage/debian"
cp -a README.md docs profiles "$stage/"
if [ -n "$suffix" ]; then
    entry=$(mktemp)
    {
        echo "uvmm ($version) bookworm; urgency=medium"
        echo
        echo "  * Build of the workspace with version suffix $suffix."
        echo
        echo " -- $(dpkg-parsechangelog -l packaging/debian/changelog -S Maintainer)  $(date -R)"
        echo
        cat packaging/debian/changelog
    } >"$entry"
    mv "$entry" "$stage/debian/changelog"
fi

echo "==> dpkg-buildpackage uvmm $version"
(
    cd "$stage"
    UVMM_WORKSPACE=$workspace dpkg-buildpackage -b -us -uc >"$stage_parent/build-$version.log" 2>&1
) || {
    tail -n 40 "$stage_parent/build-$version.log" >&2
    die "dpkg-buildpackage failed; the full log is $stage_parent/build-$version.log"
}

mkdir -p "$out"
rm -f "$out"/*.deb
for pkg in uvmm-daemon uvmm-client uvmm-restore uvmm-nagios-plugin; do
    deb=$(ls "$stage_parent/${pkg}_${version}_"*.deb 2>/dev/null) || die "no $pkg package was built"
    mv "$deb" "$out/"
done
rm -f "$stage_parent"/uvmm_"$version"_*.buildinfo "$stage_parent"/uvmm_"$version"_*.changes
rm -rf "$stage"
echo "==> $(ls "$out"/*.deb | wc -l) packages of uvmm $version in $out ($(($(date +%s) - started)) s)"
ls -l "$out"/*.deb
