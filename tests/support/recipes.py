"""Small recipes for tests that build many times (the demo is configured and slower)."""

LIGHT_DEMO = """\
# The demo's outputs from an unconfigured root: fast enough to build many times.
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs {
    snapshot = snap;
    variant = "none";
    packages = [ "busybox-static" "base-files" "netbase" "tzdata" ];
    files = { "/etc/motd" = "built by reprobuild\\n"; };
  };
in
{
  oci = oci_image { inherit root; entrypoint = [ "/bin/busybox" "sh" ]; tag = "demo:light"; };
  tarball = tarball { inherit root; compression = "zstd"; };
  iso = iso9660 { inherit root; volume_id = "LIGHTDEMO"; };
}
"""


# One unconfigured package: the smallest real build, for fault and crash tests.
NETBASE_RECIPE = (
    'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
    'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; }; }; }\n'
)
# Where netbase lies below the embedded demo mirror (snapshots/demo).
NETBASE_DEB = "archive/debian/20260711T101637Z/pool/main/n/netbase/netbase_6.4_all.deb"
