"""The Dockerfile as a builder reads it: no engine runs here, so these tests read it with dockerfile-parse.

What they check is what the builder would do with its instructions: where
the s6-overlay tarballs come from (the GitHub release, or the mirror given
with --build-arg S6_OVERLAY_BASE_URL), that the pinned digests still decide
whether they are unpacked (the RUN step itself, run here against stand-in
tarballs in a temporary directory), no registry pull for a frontend, and the
operators' tools in the image. The build itself (the downloads, apt,
unpacking onto Debian) needs an engine and the network: docs/docker.md.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
RELEASES = "https://github.com/just-containers/s6-overlay/releases/download"
TARBALLS = ("s6-overlay-noarch.tar.xz", "s6-overlay-x86_64.tar.xz")


def stages(build_args: dict[str, str] | None = None) -> list[list[tuple[dict, dict[str, str]]]]:
    """Every stage's instructions (its FROM first), each with the ARG and ENV values in force there."""
    parser = DockerfileParser(path=str(DOCKERFILE), build_args=build_args or {})
    found: list[list[tuple[dict, dict[str, str]]]] = []
    for item, context in zip(parser.structure, parser.context_structure):
        if item["instruction"] == "FROM":
            found.append([])
        if found and item["instruction"] != "COMMENT":
            found[-1].append((item, {**context.args, **context.envs}))
    return found


def final_stage(build_args: dict[str, str] | None = None) -> list[tuple[dict, dict[str, str]]]:
    """The last stage's instructions: what the image is made of."""
    return stages(build_args)[-1]


def stage_named(name: str, build_args: dict[str, str] | None = None) -> list[tuple[dict, dict[str, str]]]:
    [stage] = [s for s in stages(build_args) if s[0][0]["value"].split()[-2:] == ["AS", name]]
    return stage


S6_STAGE = "s6-overlay"


def expanded(item: dict, variables: dict[str, str]) -> list[str]:
    """An instruction's words with ${VAR} expanded, as the builder expands them."""
    return list(WordSplitter(item["value"], args=variables).split())


def s6_sources(build_args: dict[str, str] | None = None) -> list[str]:
    return [expanded(item, variables)[0] for item, variables in stage_named(S6_STAGE, build_args)
            if item["instruction"] == "ADD"]


def test_the_tarballs_come_from_the_github_release_by_default():
    version = stage_named(S6_STAGE)[-1][1]["S6_OVERLAY_VERSION"]
    assert s6_sources() == [f"{RELEASES}/v{version}/{name}" for name in TARBALLS]


def test_a_mirror_given_as_a_build_argument_replaces_every_download():
    mirror = "https://artifacts.internal.example/github-releases/just-containers/s6-overlay"
    sources = s6_sources({"S6_OVERLAY_BASE_URL": mirror, "S6_OVERLAY_VERSION": "3.2.3.0"})
    assert sources == [f"{mirror}/v3.2.3.0/{name}" for name in TARBALLS]
    # Nothing else, in any stage, is fetched from a URL.
    remote = [word for stage in stages({"S6_OVERLAY_BASE_URL": mirror}) for item, variables in stage
              if item["instruction"] in ("ADD", "COPY") for word in expanded(item, variables) if "://" in word]
    assert remote == sources


def test_the_tarballs_stay_out_of_the_image():
    """An ADD is a layer of its stage: a later `rm` hides its files but the image still carries them.
    The tarballs are fetched, checked and unpacked in a stage of their own, and the image copies
    the unpacked tree from there, nothing else of that stage."""
    image = final_stage()
    assert not [item for item, _ in image if item["instruction"] == "ADD"]
    copies = [expanded(item, variables) for item, variables in image
              if item["instruction"] == "COPY" and f"--from={S6_STAGE}" in item["value"]]
    assert copies == [[f"--from={S6_STAGE}", "/s6-root/", "/"]]
    [unpacking] = [item["value"] for item, _ in stage_named(S6_STAGE) if item["instruction"] == "RUN"
                   and "sha256sum -c" in item["value"]]
    # The tarballs are unpacked into the copied tree only after their digests are checked.
    assert unpacking.index("sha256sum -c") < unpacking.index("tar -C /s6-root")
    assert "/tmp/s6" not in " ".join(" ".join(words) for words in copies)


def test_no_parser_directive_makes_the_builder_pull_a_frontend():
    leading_comments = []
    for line in DOCKERFILE.read_text().splitlines():
        if not line.startswith("#"):
            break
        leading_comments.append(line)
    assert not [line for line in leading_comments if re.match(r"#\s*syntax\s*=", line, re.IGNORECASE)]


@pytest.fixture
def verify_and_unpack(tmp_path):
    """The Dockerfile's RUN that checks and unpacks the tarballs, pointed at tmp_path instead of /tmp/s6 and /."""
    stage = stage_named(S6_STAGE, {"S6_OVERLAY_BASE_URL": "https://mirror.example"})
    [(item, variables)] = [(i, v) for i, v in stage if i["instruction"] == "RUN" and "sha256sum -c" in i["value"]]
    downloads, root = tmp_path / "s6", tmp_path / "s6-root"
    downloads.mkdir()
    command = item["value"].replace("/tmp/s6/", f"{downloads}/").replace("/s6-root", str(root))
    assert str(downloads) in command and " /s6-root" not in command

    def run(tarballs: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
        for name, content in tarballs.items():
            (downloads / name).write_bytes(content)
        # RUN's shell form: /bin/sh -c, the ARGs in the environment.
        return subprocess.run(["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin", **variables},
                              capture_output=True, text=True, timeout=60)

    return run, root


def test_what_a_mirror_serves_is_unpacked_only_if_it_matches_the_pinned_digests(verify_and_unpack, tmp_path):
    run, root = verify_and_unpack
    payload = tmp_path / "payload"
    (payload / "etc").mkdir(parents=True)
    (payload / "etc" / "replaced").write_text("not s6-overlay\n")
    tarball = tmp_path / "other.tar.xz"
    subprocess.run(["tar", "-C", str(payload), "-cJf", str(tarball), "etc"], check=True)
    result = run({name: tarball.read_bytes() for name in TARBALLS})
    assert result.returncode != 0
    assert f"{TARBALLS[0]}: FAILED" in result.stdout and f"{TARBALLS[1]}: FAILED" in result.stdout
    assert not root.exists()  # nothing unpacked, not even the directory the image copies from


def test_tarballs_that_match_the_digests_are_unpacked_into_the_tree_the_image_copies(tmp_path):
    """The same RUN, with the digests given as build arguments for two stand-in tarballs."""
    payloads = {}
    for name in TARBALLS:
        payload = tmp_path / f"payload-{name}"
        (payload / "command").mkdir(parents=True)
        (payload / "command" / name).write_text(f"{name}\n")
        tarball = tmp_path / name
        subprocess.run(["tar", "-C", str(payload), "-cJf", str(tarball), "command"], check=True)
        payloads[name] = tarball
    digests = {arg: hashlib.sha256(payloads[name].read_bytes()).hexdigest()
               for arg, name in zip(("S6_OVERLAY_NOARCH_SHA256", "S6_OVERLAY_X86_64_SHA256"), TARBALLS)}
    [(item, variables)] = [(i, v) for i, v in stage_named(S6_STAGE, digests)
                           if i["instruction"] == "RUN" and "sha256sum -c" in i["value"]]
    downloads, root = tmp_path / "s6", tmp_path / "s6-root"
    downloads.mkdir()
    for name, tarball in payloads.items():
        shutil.copy(tarball, downloads / name)
    command = item["value"].replace("/tmp/s6/", f"{downloads}/").replace("/s6-root", str(root))
    result = subprocess.run(["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin", **variables},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (root / "command").iterdir()) == sorted(TARBALLS)


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs Debian's dpkg to say which package ships a file")
def test_the_image_installs_the_package_that_ships_ps_and_kill():
    installs = [word for item, variables in final_stage() if item["instruction"] == "RUN" and "apt-get install" in item["value"]
                for word in expanded(item, variables)]
    for program in ("ps", "kill", "pgrep"):
        # Debian 12 records some of them under /bin, others under /usr/bin (merged /usr).
        owner = subprocess.run(["dpkg", "-S", f"/bin/{program}", f"/usr/bin/{program}"],
                               capture_output=True, text=True, timeout=30)
        packages = {line.split(":")[0] for line in owner.stdout.splitlines()}
        if not packages:
            pytest.skip(f"dpkg knows no package that ships {program} on this machine (not installed)")
        assert packages & set(installs), f"{program} comes from {packages}, which the image does not install"


def installing_run(build_args: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The RUN that makes /opt/hermes/venv, and the ARGs in force there."""
    [(item, variables)] = [(i, v) for i, v in final_stage(build_args)
                           if i["instruction"] == "RUN" and "/opt/hermes/venv/bin/pip install" in i["value"]]
    return item["value"], variables


def gateway_setting(build_args: dict[str, str]) -> str:
    """HERMES_GATEWAY as the builder sets it: ``${HERMES_AGENT_VERSION:+hermes-agent}`` expands as sh
    expands it (dockerfile-parse does not know ``:+``; Docker and sh agree on it)."""
    [line] = [item["value"] for item, _ in final_stage() if item["instruction"] == "ENV"
              and "HERMES_GATEWAY=" in item["value"]]
    raw = re.search(r"HERMES_GATEWAY=(\S+)", line).group(1)
    assert raw == "${HERMES_AGENT_VERSION:+hermes-agent}"
    _, variables = installing_run(build_args)
    result = subprocess.run(["/bin/sh", "-c", f"printf %s {raw}"], env={"PATH": "/usr/bin:/bin", **variables},
                            capture_output=True, text=True, timeout=10, check=True)
    return result.stdout


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """What the wheel stage hands the final stage: this package's wheel and its dependencies' (here pip
    fetches them), made once for both builds below: the same for each, and ~7 s to make."""
    wheels = tmp_path_factory.mktemp("wheels")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    deps = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(wheels),
                           str(next(wheels.glob("*.whl")))], capture_output=True, text=True, timeout=600)
    assert deps.returncode == 0, deps.stderr
    return wheels


@pytest.fixture
def wheels(wheelhouse, tmp_path) -> Path:
    """A copy of the wheelhouse for one build: the RUN step removes what it installed from."""
    return Path(shutil.copytree(wheelhouse, tmp_path / "wheels"))


@pytest.mark.slow
@pytest.mark.parametrize("version", ["", "0.19.0"], ids=["without hermes-agent", "with hermes-agent 0.19.0"])
def test_the_build_argument_installs_hermes_agent_beside_the_package_and_makes_it_the_slots_gateway(
        tmp_path, wheels, version):
    """The image's own RUN step, run here into a temporary venv (pip's cache allowed, the rest as written)."""
    command, variables = installing_run({"HERMES_AGENT_VERSION": version} if version else {})
    venv = tmp_path / "venv"
    command = (command.replace("/opt/hermes/venv", str(venv)).replace("/tmp/wheels", str(wheels))
               .replace("--no-cache-dir ", ""))
    assert "/opt/" not in command and "/tmp/wheels" not in command
    run = subprocess.run(["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin", **variables},
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == "hermes-state 0.1.0"
    if version:
        assert "Hermes Agent v0.19.0" in run.stdout
        assert (venv / "bin" / "hermes").exists() and gateway_setting({"HERMES_AGENT_VERSION": version}) == "hermes-agent"
    else:
        assert not (venv / "bin" / "hermes").exists() and gateway_setting({}) == ""
