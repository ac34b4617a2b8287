#!/usr/bin/env bash
# debuerreotype 0.15's steps after debootstrap, run inside the root by the
# library's run step (the root is "/": debuerreotype's "$targetDir" is empty
# here and its debuerreotype-chroot is plain "env -i ..."). Each section is
# the named script of /usr/share/debuerreotype/scripts, in the same order
# and with the same commands, so the tree ends as debuerreotype leaves it.
#
# Environment: DEBUERREOTYPE_INCLUDE (comma-separated, as --include=),
# DEBUERREOTYPE_SLIM (non-empty: run debuerreotype-slimify),
# SOURCE_DATE_EPOCH (debuerreotype's epoch), and the library's directory
# with slimify-excludes and slimify-includes as the first argument.
set -Eeuo pipefail

# .constants.sh
export TZ='UTC' LC_ALL='C'
umask 0002
libDir="$1"
epoch="$SOURCE_DATE_EPOCH"
targetDir=''

# debuerreotype-chroot, inside the root already
chroot_() {
	env -i PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" TZ="$TZ" LC_ALL="$LC_ALL" SOURCE_DATE_EPOCH="$epoch" "$@"
}

# .apt-version.sh
package_version() {
	chroot_ dpkg-query --show --showformat '${Version}\n' "$1"
}

# ---------------------------------------------------------------- debuerreotype-init
echo "$epoch" > "$targetDir/debuerreotype-epoch"

chroot_ bash -c '
	if apt-mark --help &> /dev/null; then
		apt-mark auto ".*" > /dev/null
		if [ -n "$1" ]; then
			IFS=","; includePackages=( $1 ); unset IFS
			apt-mark manual "${includePackages[@]}"
		fi
	fi
' -- "${DEBUERREOTYPE_INCLUDE:-}"

echo 'debuerreotype' > "$targetDir/etc/hostname"
{
	echo '# https://1.1.1.1 (privacy-focused, highly-available DNS service)'
	echo 'nameserver 1.1.1.1'
	echo 'nameserver 1.0.0.1'
} > "$targetDir/etc/resolv.conf"
chmod 0644 \
	"$targetDir/etc/hostname" \
	"$targetDir/etc/resolv.conf"

chown 0:0 "$targetDir/"
chmod 0755 "$targetDir/"

sp_lstchg="$(( epoch / 60 / 60 / 24 ))"
for shadowFile in etc/shadow etc/shadow-; do
	[ -e "$targetDir/$shadowFile" ] || continue

	newShadowFile="$shadowFile.debuerreotype"
	awk -F ':' \
		-v OFS=':' \
		-v sp_lstchg="$sp_lstchg" \
		'{
			if ($3 > sp_lstchg) {
				$3 = sp_lstchg
			}
			print
		}' "$targetDir/$shadowFile" > "$targetDir/$newShadowFile"
	if [ "$(< "$targetDir/$shadowFile")" != "$(< "$targetDir/$newShadowFile")" ]; then
		cat "$targetDir/$newShadowFile" > "$targetDir/$shadowFile"
	fi
	rm -f "$targetDir/$newShadowFile"
done

# ---------------------------------------------------------------- debuerreotype-minimizing-config
aptVersion="$(package_version apt)"
dpkgVersion="$(package_version dpkg)"

# .fix-apt-comments.sh
fix_apt_comments() {
	if dpkg --compare-versions "$aptVersion" '>=' '0.7.22~'; then
		return
	fi
	sed -ri -e 's!^#!//!' "$@"
}

cat > "$targetDir/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh

# For most Docker users, "apt-get install" only happens during "docker build",
# where starting services doesn't work and often fails in humorous ways. This
# prevents those failures by stopping the services from attempting to start.

exit 101
EOF
chmod 0755 "$targetDir/usr/sbin/policy-rc.d"

if chroot_ apt-get install -qq -s upstart &> /dev/null; then
	chroot_ dpkg-divert --local --rename --add /sbin/initctl > /dev/null
	cp -a "$targetDir/usr/sbin/policy-rc.d" "$targetDir/sbin/initctl"
	sed -i 's/^exit.*/exit 0/' "$targetDir/sbin/initctl"
fi

if [ -d "$targetDir/etc/dpkg/dpkg.cfg.d" ] && dpkg --compare-versions "$dpkgVersion" '>=' '1.15.8.6~'; then
	cat > "$targetDir/etc/dpkg/dpkg.cfg.d/docker-apt-speedup" <<'EOF'
# For most Docker users, package installs happen during "docker build", which
# doesn't survive power loss and gets restarted clean afterwards anyhow, so
# this minor tweak gives us a nice speedup (much nicer on spinning disks,
# obviously).

force-unsafe-io
EOF
	chmod 0644 "$targetDir/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
fi

if [ -d "$targetDir/etc/apt/apt.conf.d" ]; then
	cat > "$targetDir/etc/apt/apt.conf.d/docker-autoremove-suggests" <<'EOF'
# Since Docker users are looking for the smallest possible final images, the
# following emerges as a very common pattern:

#   RUN apt-get update \
#       && apt-get install -y <packages> \
#       && <do some compilation work> \
#       && apt-get purge -y --auto-remove <packages>

# By default, APT will actually _keep_ packages installed via Recommends or
# Depends if another package Suggests them, even and including if the package
# that originally caused them to be installed is removed.  Setting this to
# "false" ensures that APT is appropriately aggressive about removing the
# packages it added.

# https://aptitude.alioth.debian.org/doc/en/ch02s05s05.html#configApt-AutoRemove-SuggestsImportant
Apt::AutoRemove::SuggestsImportant "false";
EOF
	chmod 0644 "$targetDir/etc/apt/apt.conf.d/docker-autoremove-suggests"
	fix_apt_comments "$targetDir/etc/apt/apt.conf.d/docker-autoremove-suggests"

	aptGetClean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
	cat > "$targetDir/etc/apt/apt.conf.d/docker-clean" <<EOF
# Since for most Docker users, package installs happen in "docker build" steps,
# they essentially become individual layers due to the way Docker handles
# layering, especially using CoW filesystems.  What this means for us is that
# the caches that APT keeps end up just wasting space in those layers, making
# our layers unnecessarily large (especially since we'll normally never use
# these caches again and will instead just "docker build" again and make a brand
# new image).

# Ideally, these would just be invoking "apt-get clean", but in our testing,
# that ended up being cyclic and we got stuck on APT's lock, so we get this fun
# creation that's essentially just "apt-get clean".
DPkg::Post-Invoke { $aptGetClean };
APT::Update::Post-Invoke { $aptGetClean };

Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";

# Note that we do realize this isn't the ideal way to do this, and are always
# open to better suggestions (https://github.com/debuerreotype/debuerreotype/issues).
EOF
	chmod 0644 "$targetDir/etc/apt/apt.conf.d/docker-clean"
	fix_apt_comments "$targetDir/etc/apt/apt.conf.d/docker-clean"

	cat > "$targetDir/etc/apt/apt.conf.d/docker-gzip-indexes" <<'EOF'
# Since Docker users using "RUN apt-get update && apt-get install -y ..." in
# their Dockerfiles don't go delete the lists files afterwards, we want them to
# be as small as possible on-disk, so we explicitly request that Apt keep them
# compressed on-disk too instead of decompressing them.

# For comparison, an "apt-get update" layer without this on a pristine
# "debian:wheezy" base image was "29.88 MB", where with this it was only
# "8.273 MB".

Acquire::GzipIndexes "true";
EOF
	isDebianJessie="$([ -f "$targetDir/etc/os-release" ] && source "$targetDir/etc/os-release" && [ "${ID:-}" = 'debian' ] && [ "${VERSION_ID:-}" = '8' ] && echo '1')" || :
	if [ -n "$isDebianJessie" ] || [[ "$aptVersion" == 0.* ]] || dpkg --compare-versions "$aptVersion" '<<' '1.0.9.2~'; then
		cat >> "$targetDir/etc/apt/apt.conf.d/docker-gzip-indexes" <<'EOF'

# https://salsa.debian.org/apt-team/apt/commit/b0f4b486e6850c5f98520ccf19da71d0ed748ae4; released in src:apt 1.0.9.2, 2014-10-02
# prior to src:apt 1.0.9.2, "Acquire::GzipIndexes" _only_ applied to gzip-compressed list files, so we need to prefer those on older releases
Acquire::CompressionTypes::Order:: "gz";
EOF
		if [ -n "$isDebianJessie" ]; then
			cat >> "$targetDir/etc/apt/apt.conf.d/docker-gzip-indexes" <<'EOF'
# see also https://github.com/debuerreotype/debuerreotype/issues/41 (details of a bug that's apparently specific to Debian Jessie)
EOF
		fi
	fi
	chmod 0644 "$targetDir/etc/apt/apt.conf.d/docker-gzip-indexes"
	fix_apt_comments "$targetDir/etc/apt/apt.conf.d/docker-gzip-indexes"

	cat > "$targetDir/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
# In Docker, we don't often need the "Translations" files, so we're just wasting
# time and space by downloading them, and this inhibits that.  For users that do
# need them, it's a simple matter to delete this file and "apt-get update". :)

Acquire::Languages "none";
EOF
	chmod 0644 "$targetDir/etc/apt/apt.conf.d/docker-no-languages"
	fix_apt_comments "$targetDir/etc/apt/apt.conf.d/docker-no-languages"
fi

# ---------------------------------------------------------------- debuerreotype-slimify
if [ -n "${DEBUERREOTYPE_SLIM:-}" ]; then
	if ! { [ -d "$targetDir/etc/dpkg/dpkg.cfg.d" ] && dpkg --compare-versions "$dpkgVersion" '>=' '1.15.8.6~'; }; then
		echo >&2 "note: skipping debuerreotype-slimify: dpkg version ($dpkgVersion) too old to support path-exclude"
	else
		shopt -s nullglob
		extraSpecialDirectories=( "$targetDir"/usr/share/man/man[0-9]/ )
		shopt -u nullglob

		IFS=$'\n'; set -o noglob
		slimExcludes=( $(grep -vE '^#|^$' "$libDir/slimify-excludes" | sort -u) )
		slimIncludes=( $(grep -vE '^#|^$' "$libDir/slimify-includes" | sort -u) )
		set +o noglob; unset IFS

		dpkgCfgFile="$targetDir/etc/dpkg/dpkg.cfg.d/docker"
		mkdir -p "$(dirname "$dpkgCfgFile")"
		{
			echo '# This is the "slim" variant of the Debian base image.'
			echo '# Many files which are normally unnecessary in containers are excluded,'
			echo '# and this configuration file keeps them that way.'
		} > "$dpkgCfgFile"

		findMatchIncludes=()
		for slimInclude in "${slimIncludes[@]}"; do
			[ "${#findMatchIncludes[@]}" -eq 0 ] || findMatchIncludes+=( '-o' )
			findMatchIncludes+=( -path "$slimInclude" )
		done
		findMatchIncludes=( '(' "${findMatchIncludes[@]}" ')' )

		for slimExclude in "${slimExcludes[@]}"; do
			{
				echo
				echo "# dpkg -S '$slimExclude'"
				if dpkgOutput="$(chroot_ dpkg -S "$slimExclude" 2>&1)"; then
					echo "$dpkgOutput" | sed 's/: .*//g; s/, /\n/g' | sort -u | xargs
				else
					echo "$dpkgOutput"
				fi | fold -w 76 -s | sed 's/^/#  /'
				echo "path-exclude $slimExclude"
			} >> "$dpkgCfgFile"

			if [[ "$slimExclude" == *'/*' ]]; then
				if [ -d "$targetDir/$(dirname "$slimExclude")" ]; then
					chroot_ \
						find "$(dirname "$slimExclude")" \
							-depth -mindepth 1 \
							-not \( -type d -o -type l \) \
							-not "${findMatchIncludes[@]}" \
							-exec rm -f '{}' ';'

					while [ "$(
						chroot_ \
							find "$(dirname "$slimExclude")" \
								-depth -mindepth 1 \( -empty -o -xtype l \) \
								-exec rm -rf '{}' ';' -printf '.' \
							| wc -c
					)" -gt 0 ]; do true; done
				fi
			else
				chroot_ rm -f "$slimExclude"
			fi
		done
		{
			echo
			for slimInclude in "${slimIncludes[@]}"; do
				echo "path-include $slimInclude"
			done
		} >> "$dpkgCfgFile"
		chmod 0644 "$dpkgCfgFile"

		if [ "${#extraSpecialDirectories[@]}" -gt 0 ]; then
			mkdir -p "${extraSpecialDirectories[@]}"
		fi
	fi
fi

# ---------------------------------------------------------------- debuerreotype-fixup (from debuerreotype-tar)
if [ -s "$targetDir/etc/machine-id" ]; then
	echo -n > "$targetDir/etc/machine-id"
	chmod 0644 "$targetDir/etc/machine-id"
fi

rm -f \
	"$targetDir/var/log/dpkg.log" \
	"$targetDir/var/log/bootstrap.log" \
	"$targetDir/var/log/alternatives.log" \
	"$targetDir/var/cache/ldconfig/aux-cache"

rm -f "$targetDir/run/mount/utab"
rmdir "$targetDir/run/mount" 2>/dev/null || :
# The final "find -newermt @epoch -exec touch" is the run step's own clamp of
# every mtime to the epoch (normalise = "minimal").
