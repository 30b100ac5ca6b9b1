"""The account step (docker/rootfs/usr/local/sbin/hermes-account) against real mounts inside the volume.

Each run happens in a private mount namespace (``unshare --mount``, as root:
CI runs the suite as root) where the fake root's ``opt/data`` gets real bind
mounts inside it: one writable, one read-only, one whose name needs quoting,
all on the same file system as the volume, as Docker's bind mounts and named
volumes on one disk are. Nothing of these mounts is visible outside the
namespace, and they go away with it.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import run_as
from container_sim import IMAGE_ID, Container

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces and chown need root (CI runs the suite as root)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is missing: `make setup` installs it"),
]

OTHER_ID = 4242  # the owner of a mount that is neither the image's account nor the remapped one


def owner(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_uid, info.st_gid


def tree(top: Path, uid: int, gid: int) -> None:
    """A directory with a file, a subdirectory and a symbolic link, all owned by uid:gid."""
    (top / "sub").mkdir(parents=True)
    (top / "file").write_text("data\n")
    (top / "sub" / "nested").write_text("more\n")
    (top / "link").symlink_to("/etc/hostname")
    for path in (top, top / "file", top / "sub", top / "sub" / "nested", top / "link"):
        os.lchown(path, uid, gid)


def owners(top: Path) -> dict[str, tuple[int, int]]:
    found = {".": owner(top)}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(root, name)
            found[str(path.relative_to(top))] = owner(path)
    return found


def bind(source: Path, target: Path, *, read_only: bool = False) -> list[str]:
    commands = [f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}"]
    if read_only:
        commands.append(f"mount -o remount,bind,ro {shlex.quote(str(target))}")
    return commands


def account_step(box: Container, mounts: list[str]):
    """Run the image's account step as root in a new mount namespace where ``mounts`` (shell commands) ran first."""
    script = "set -e\n" + "\n".join(mounts) + '\nexec "$@"\n'
    step = Container.image_file("/usr/local/sbin/hermes-account")
    return run_as(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *box.argv(step)],
                  None, env=box.env, timeout=60)


@pytest.fixture
def box(world_tmp, hermes_user):
    """The image's volume (owned by 10000:10000, as `docker build` leaves it) with three directories to mount in it."""
    container = Container(world_tmp, hermes_user)
    container.build(legacy_home=None)
    tree(container.volume / "profiles", IMAGE_ID, IMAGE_ID)
    for name, uid in (("inner", IMAGE_ID), ("readonly", IMAGE_ID), ("foreign", OTHER_ID)):
        tree(world_tmp / "sources" / name, uid, uid)
    return container


def test_a_remap_leaves_every_mount_inside_the_volume_as_it_is(box, world_tmp):
    sources = world_tmp / "sources"
    targets = {"inner": box.volume / "other", "readonly": box.volume / "ro", "foreign": box.volume / "my [data]*"}
    for target in targets.values():
        target.mkdir()
        os.lchown(target, IMAGE_ID, IMAGE_ID)
    # The same device: -xdev alone would have walked into all of them.
    assert {os.stat(sources / name).st_dev for name in targets} == {os.stat(box.volume).st_dev}
    mounts = [*bind(sources / "inner", targets["inner"]), *bind(sources / "readonly", targets["readonly"], read_only=True),
              *bind(sources / "foreign", targets["foreign"])]
    before = {name: owners(sources / name) for name in targets}
    passwd = box.root / "etc" / "passwd"

    first = account_step(box, mounts)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert f"user {box.user.name}: uid {IMAGE_ID} -> {box.user.uid}" in first.stdout
    assert "except the 3 mount(s) inside it" in first.stdout
    assert f"{box.user.name}:x:{box.user.uid}:{box.user.gid}:" in passwd.read_text()
    # What the mounts hold, their roots included, is untouched; the rest of the volume is the account's.
    assert {name: owners(sources / name) for name in targets} == before
    assert set(owners(box.volume / "profiles").values()) == {(box.user.uid, box.user.gid)}
    assert owner(box.volume) == (box.user.uid, box.user.gid)

    # The next start: nothing to remap, nothing to re-own, the mounts still untouched.
    again = account_step(box, mounts)
    assert again.returncode == 0, again.stderr
    assert "->" not in again.stdout and "given to" not in again.stdout
    assert {name: owners(sources / name) for name in targets} == before


def test_a_read_only_volume_that_needs_reowning_stops_the_start_before_any_change(box):
    etc = {name: (box.root / "etc" / name).read_bytes() for name in ("passwd", "group", "shadow", "gshadow")}
    before = owners(box.volume)
    mounts = bind(box.volume, box.volume, read_only=True)
    expected = (f"hermes-account: {box.volume} is read-only and {len(before)} of its entries do not belong to "
                f"{box.user.uid}:{box.user.gid}; give them to it from the host, or mount the volume read-write\n")
    # Twice: the second start fails the same way, because the first changed nothing.
    for _ in range(2):
        result = account_step(box, mounts)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", expected)
        assert {name: (box.root / "etc" / name).read_bytes() for name in etc} == etc
        assert owners(box.volume) == before


def test_a_read_only_volume_already_owned_by_the_account_is_fine(box):
    """Nothing to re-own and no remap (the image's own ids): a read-only volume is no reason to stop."""
    box.extra_env.update(HERMES_UID=str(IMAGE_ID), HERMES_GID=str(IMAGE_ID))
    result = account_step(box, bind(box.volume, box.volume, read_only=True))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hermes-account: {box.user.name} is {IMAGE_ID}:{IMAGE_ID}; {box.volume} belongs to it\n"


def test_a_read_only_etc_stops_a_remap_before_any_change(box):
    etc = box.root / "etc"
    passwd, before = etc.joinpath("passwd").read_bytes(), owners(box.volume)
    result = account_step(box, bind(etc, etc, read_only=True))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == (
        f"hermes-account: cannot give '{box.user.name}' the ids {box.user.uid}:{box.user.gid}: {etc} is read-only "
        "(leave HERMES_UID/HERMES_GID unset, or make /etc writable)\n"
    )
    assert etc.joinpath("passwd").read_bytes() == passwd
    assert owners(box.volume) == before


def unused_id(box: Container, start: int = 1234) -> int:
    """An id that no account or group has, neither in the fake root's files nor on this machine."""
    taken = set()
    for name in ("passwd", "group"):
        for path in (box.root / "etc" / name, Path("/etc") / name):
            taken |= {int(line.split(":")[2]) for line in path.read_text().splitlines() if line.count(":") >= 2}
    candidate = start
    while candidate in taken:
        candidate += 1
    return candidate


def test_a_remap_to_ids_nobody_has_yet_gives_the_account_and_the_volume_those_ids(box):
    """`docker run -e HERMES_UID=1234 -e HERMES_GID=1234`: no group 1234 in the image, nor on the host.

    shadow 4.13's `usermod --prefix DIR --gid N` looks N up in the real /etc/group, not in DIR's,
    so giving usermod the new gid failed ("group '1234' does not exist") on a real engine."""
    new = unused_id(box)
    box.extra_env.update(HERMES_UID=str(new), HERMES_GID=str(new))
    result = account_step(box, [])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"group {box.user.name}: gid {IMAGE_ID} -> {new}" in result.stdout
    assert f"user {box.user.name}: uid {IMAGE_ID} -> {new}" in result.stdout
    etc = box.root / "etc"
    assert f"{box.user.name}:x:{new}:{new}::/opt/data:" in etc.joinpath("passwd").read_text()
    assert f"{box.user.name}:x:{new}:" in etc.joinpath("group").read_text()
    assert set(owners(box.volume).values()) == {(new, new)}
    # The next start finds the account as asked: nothing to change.
    again = account_step(box, [])
    assert again.returncode == 0, again.stderr
    assert "->" not in again.stdout and "given to" not in again.stdout


def test_a_remap_of_the_uid_alone_or_the_gid_alone_keeps_the_other_id(box):
    new = unused_id(box, start=4321)
    etc = box.root / "etc"
    box.extra_env.update(HERMES_UID=str(IMAGE_ID), HERMES_GID=str(new))
    result = account_step(box, [])
    assert result.returncode == 0, result.stderr
    assert f"{box.user.name}:x:{IMAGE_ID}:{new}:" in etc.joinpath("passwd").read_text()
    box.extra_env.update(HERMES_UID=str(new), HERMES_GID=str(new))
    result = account_step(box, [])
    assert result.returncode == 0, result.stderr
    assert "gid" not in result.stdout and f"uid {IMAGE_ID} -> {new}" in result.stdout
    assert f"{box.user.name}:x:{new}:{new}:" in etc.joinpath("passwd").read_text()
