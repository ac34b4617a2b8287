#!/bin/sh
# What archlinux-docker's scripts/make-rootfs.sh (image "repro") does to the
# root around and after its "pacman -Sy -r ROOT --noscriptlet base GROUP", run
# inside the root (its "$BUILDDIR" is "/" here; each step of its own that needs
# a tool the root lacks is skipped, so a root of test packages works too).
# The last steps of the script are the library's: mtimes set to the epoch
# (normalise = "epoch") and its tar options (tarball format "posix").
set -e

ln -fs /usr/lib/os-release /etc/os-release
# pacman -Sy makes its sync directory (the databases in it are excluded).
mkdir -p /var/lib/pacman/sync

if grep -q '#DisableSandboxFilesystem' /etc/pacman.conf; then
sed -i '/#DisableSandboxFilesystem/{c\
# No kernel landlock in containerd\
DisableSandboxFilesystem
}' /etc/pacman.conf
else
sed -i '/#DisableSandbox/{c\
# No kernel landlock in containerd\
DisableSandbox
}' /etc/pacman.conf
fi

if command -v update-ca-trust >/dev/null 2>&1; then update-ca-trust; fi
if command -v pacman-key >/dev/null 2>&1; then
	pacman-key --init
	pacman-key --populate
fi

# Clear pacman keyring for reproducible builds
rm -rf /etc/pacman.d/gnupg/*

# add system users
if command -v systemd-sysusers >/dev/null 2>&1; then systemd-sysusers --root "/"; fi

# remove passwordless login for root (see CVE-2019-5021 for reference)
if [ -f /etc/shadow ]; then sed -i -e 's/^root::/root:!:/' /etc/shadow; fi
