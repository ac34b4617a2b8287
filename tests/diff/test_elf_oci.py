"""ELF identifiers and OCI images: the classic non-reproducible Go/C binary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reprobuild.diff import Difference, compare, render_text
from reprobuild.diff.elf import parse_elf
from reprobuild.export.oci import ImageConfig, write_oci_archive, write_oci_layout
from tests.diff.conftest import EPOCH, canonical_tar, make_tree, need

SOURCE = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
ID_A = "c2849cac0123456789abcdef0123456789abcdef"
ID_B = "4c4f2c710123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same program linked twice with different GNU build IDs."""
    need("gcc")
    work = tmp_path_factory.mktemp("elf")
    (work / "hello.c").write_text(SOURCE)
    out = []
    for name, build_id in (("a", ID_A), ("b", ID_B)):
        subprocess.run(
            [
                "gcc",
                "-O1",
                "-o",
                str(work / name),
                str(work / "hello.c"),
                f"-Wl,--build-id=0x{build_id}",
            ],
            check=True,
        )
        out.append(work / name)
    return out[0], out[1]


def _go_note(build_id: str) -> bytes:
    name = b"Go\0\0"
    desc = build_id.encode()
    pad = b"\0" * (-len(desc) % 4)
    return (
        (3).to_bytes(4, "little")
        + len(desc).to_bytes(4, "little")
        + (4).to_bytes(4, "little")
        + name
        + desc
        + pad
    )


def test_gnu_build_id_is_named(binaries: tuple[Path, Path]) -> None:
    a, b = binaries
    assert any(n.value == ID_A for n in parse_elf(a).notes)
    diff = compare(a, b)
    assert diff is not None and diff.kind == "elf"
    assert diff.summary == "content differs (ELF .note.gnu.build-id c2849cac.. vs 4c4f2c71..)"
    note = {c.source: c for c in diff.children}[".note.gnu.build-id"]
    assert note.summary == f"{ID_A} vs {ID_B}"


def test_go_build_id_note_is_named(binaries: tuple[Path, Path], tmp_path: Path) -> None:
    need("objcopy")
    a, _ = binaries
    outs = []
    for name, go_id in (("ga", "aaaa/bbbb/cccc/dddd"), ("gb", "aaaa/bbbb/cccc/eeee")):
        (tmp_path / f"{name}.note").write_bytes(_go_note(go_id))
        subprocess.run(
            [
                "objcopy",
                "--add-section",
                f".note.go.buildid={tmp_path / f'{name}.note'}",
                str(a),
                str(tmp_path / name),
            ],
            check=True,
        )
        outs.append(tmp_path / name)
    diff = compare(outs[0], outs[1])
    assert diff is not None
    assert diff.summary == "content differs (ELF Go build ID ..dddd vs ..eeee)"
    children = {c.source: c.summary for c in diff.children}
    assert children["Go build ID"] == "aaaa/bbbb/cccc/dddd vs aaaa/bbbb/cccc/eeee"
    assert children["section .note.go.buildid"] == "content differs (36 bytes)"


def _image(tmp_path: Path, name: str, binary: Path, env: dict[str, str]) -> Path:
    base = make_tree(tmp_path / f"{name}-base", {"etc/os-release": b"ID=test\n"})
    top = make_tree(
        tmp_path / f"{name}-top",
        {"etc/os-release": b"ID=test\n", "usr/bin/cosign": binary.read_bytes()},
    )
    layers = [
        canonical_tar(base, tmp_path / f"{name}-0.tar"),
        canonical_tar(top, tmp_path / f"{name}-1.tar"),
    ]
    layout = tmp_path / f"{name}.oci"
    config = ImageConfig(entrypoint=["/usr/bin/cosign"], env=env, tag="test:1")
    write_oci_layout(layers, config, layout, epoch=EPOCH, compression="zstd")
    return layout


def test_oci_layouts_config_fields_and_layer_binary(
    binaries: tuple[Path, Path], tmp_path: Path
) -> None:
    a = _image(tmp_path, "a", binaries[0], {"PATH": "/usr/bin", "MODE": "one"})
    b = _image(tmp_path, "b", binaries[1], {"PATH": "/usr/bin", "MODE": "two"})
    diff = compare(a, b)
    assert diff is not None and diff.kind == "oci-layout"
    assert diff.summary == "1 layer differ"
    text = render_text(diff)
    lines = text.splitlines()
    assert (
        "layer 1: usr/bin/cosign: content differs (ELF .note.gnu.build-id c2849cac.. vs 4c4f2c71..)"
        in lines
    )
    assert 'image config: config.Env: removed ["MODE=one"], added ["MODE=two"]' in lines
    assert any(line.startswith("image config: rootfs.diff_ids[1]: ") for line in lines)
    assert any(line.startswith("manifest: layers[1].digest: ") for line in lines)
    assert not any(line.startswith("layer 0") for line in lines)

    # The same pair as oci-archive tars.
    write_oci_archive(a, tmp_path / "a.oci.tar", epoch=EPOCH)
    write_oci_archive(b, tmp_path / "b.oci.tar", epoch=EPOCH)
    archived = compare(tmp_path / "a.oci.tar", tmp_path / "b.oci.tar")
    assert archived is not None and archived.kind == "oci-archive"
    assert render_text(archived) == text


def test_oci_entrypoint_only(binaries: tuple[Path, Path], tmp_path: Path) -> None:
    base = make_tree(tmp_path / "base", {"etc/x": b"x\n"})
    tar = canonical_tar(base, tmp_path / "base.tar")
    write_oci_layout([tar], ImageConfig(entrypoint=["/bin/sh"]), tmp_path / "a", epoch=EPOCH)
    write_oci_layout([tar], ImageConfig(entrypoint=["/bin/bash"]), tmp_path / "b", epoch=EPOCH + 1)
    diff = compare(tmp_path / "a", tmp_path / "b")
    assert diff is not None
    fields = {d.source: d.summary for d in diff.walk() if d.kind == "field"}
    assert fields["config.Entrypoint"] == 'removed ["/bin/sh"], added ["/bin/bash"]'
    assert fields["created"] == '"2023-11-14T22:13:20Z" vs "2023-11-14T22:13:21Z"'
    assert not any(isinstance(d, Difference) and d.source.startswith("layer") for d in diff.walk())
