# hermes-state in a container: s6-overlay v3 as PID 1, the start steps (the
# account, then the boot pass) as its stage-2 hook, the watch daemon as an
# s6-rc longrun, one s6 slot per profile.
# How to run it, the volume, upgrades and what is verified: docs/docker.md.
#
#   docker run IMAGE                   the supervised tree: boot, watch, gateways
#   docker run IMAGE history alice     hermes-state history alice, as the hermes user
#   docker run IMAGE bash              (any program on PATH) as the hermes user
#   docker run IMAGE sleep infinity
#
# --build-arg HERMES_AGENT_VERSION=0.19.0 installs hermes-agent beside the
# package and makes its gateway the slots' command (docs/hermes-agent.md);
# without it the image holds this package and its stand-in gateway alone.
#
# No `# syntax=` line: the builder's own Dockerfile frontend is enough, and
# BuildKit would otherwise pull one from a registry. The s6-overlay tarballs
# can come from a mirror: --build-arg S6_OVERLAY_BASE_URL=... (see below).

# ---- the wheel: built here so the source tree stays out of the image --------
FROM debian:12.14-slim AS wheel

# The base image's tag pins the Debian point release; exact package versions
# leave the archive at the next point release and would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /src/
COPY hermes_lifecycle/ /src/hermes_lifecycle/
COPY hermes_lifecycle_cli/ /src/hermes_lifecycle_cli/
COPY migrations/ /src/migrations/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src

# ---- s6-overlay: fetched, checked and unpacked here ----------------------------
# In a stage of its own, so that the tarballs stay out of the image: an ADD
# is a layer of the stage it is in, and a later `rm` in the same stage hides
# its files without taking them out of that layer. The image copies the
# unpacked tree alone.
FROM debian:12.14-slim AS s6-overlay

# s6-overlay: the version and the sha256 of its two tarballs are pinned here,
# in review, rather than read from the release's own .sha256 files at build
# time: a digest fetched from the same place as the tarball cannot tell a
# replaced release asset from the real one. To upgrade: take the three values
# from the new release's .sha256 files and change them together.
# S6_OVERLAY_BASE_URL: where the tarballs are fetched, laid out as the GitHub
# releases are (BASE/vVERSION/s6-overlay-noarch.tar.xz); point it at a mirror
# for air-gapped builds. The pinned digests check whatever it serves.
ARG S6_OVERLAY_VERSION=3.2.3.0
ARG S6_OVERLAY_BASE_URL=https://github.com/just-containers/s6-overlay/releases/download
ARG S6_OVERLAY_NOARCH_SHA256=b720f9d9340efc8bb07528b9743813c836e4b02f8693d90241f047998b4c53cf
ARG S6_OVERLAY_X86_64_SHA256=a93f02882c6ed46b21e7adb5c0add86154f01236c93cd82c7d682722e8840563

# xz-utils to unpack the tarballs. Versions: see the wheel stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends xz-utils \
 && rm -rf /var/lib/apt/lists/*

ADD ${S6_OVERLAY_BASE_URL}/v${S6_OVERLAY_VERSION}/s6-overlay-noarch.tar.xz /tmp/s6/
ADD ${S6_OVERLAY_BASE_URL}/v${S6_OVERLAY_VERSION}/s6-overlay-x86_64.tar.xz /tmp/s6/
RUN printf '%s  %s\n' \
      "${S6_OVERLAY_NOARCH_SHA256}" /tmp/s6/s6-overlay-noarch.tar.xz \
      "${S6_OVERLAY_X86_64_SHA256}" /tmp/s6/s6-overlay-x86_64.tar.xz >/tmp/s6/SHA256SUMS \
 && sha256sum -c /tmp/s6/SHA256SUMS \
 && mkdir /s6-root \
 && tar -C /s6-root -Jxpf /tmp/s6/s6-overlay-noarch.tar.xz \
 && tar -C /s6-root -Jxpf /tmp/s6/s6-overlay-x86_64.tar.xz

# ---- the image ---------------------------------------------------------------
FROM debian:12.14-slim

# hermes-agent, the program this store serves: a version installs it from the package index
# (HERMES_AGENT_EXTRAS, e.g. [messaging], adds its optional platforms); empty, it is left out.
ARG HERMES_AGENT_VERSION=
ARG HERMES_AGENT_EXTRAS=

# python3 for the venv; sqlite3 and procps (ps, kill, pgrep) for operators.
# Versions: see the wheel stage.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv sqlite3 procps \
 && rm -rf /var/lib/apt/lists/*

# s6-overlay's files as its tarballs hold them (/init, /command, /package, /etc/s6-overlay).
COPY --from=s6-overlay /s6-root/ /

# The package, installed as it ships (a plain, non-editable pip install) into
# its own virtual environment; every dependency as a wheel (pysqlite3's
# bundles a SQLite without the WAL-reset bug), nothing compiled here.
# hermes-agent, when asked for, goes into the same environment first: the two
# install no name in common (docs/hermes-agent.md), and its `hermes` finds
# this package's plugin there.
COPY --from=wheel /wheels/ /tmp/wheels/
RUN python3 -m venv /opt/hermes/venv \
 && if [ -n "${HERMES_AGENT_VERSION}" ]; then \
      /opt/hermes/venv/bin/pip install --no-cache-dir --only-binary=:all: \
        "hermes-agent${HERMES_AGENT_EXTRAS}==${HERMES_AGENT_VERSION}" \
      && /opt/hermes/venv/bin/hermes --version; \
    fi \
 && /opt/hermes/venv/bin/pip install --no-cache-dir --only-binary=:all: /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/hermes/venv/bin/hermes-state --version

# The gateway user: uid/gid 10000, home on the volume. HERMES_UID/HERMES_GID
# remap it at start (/usr/local/sbin/hermes-account). The watch daemon's
# logger writes as nobody.
RUN groupadd --gid 10000 hermes \
 && useradd --uid 10000 --gid hermes --home-dir /opt/data --no-create-home --shell /usr/sbin/nologin hermes \
 && install -d -o hermes -g hermes -m 0750 /opt/data \
 && install -d -o nobody -g nogroup -m 0755 /var/log/hermes-state-watch

# The start steps, cont-finish.d, the s6-rc services, the privilege drop.
COPY docker/rootfs/ /

# s6-svc for anyone but root is an intent in the event log, never a command to
# s6 (usr/local/libexec/hermes-state/s6-svc): hermes-agent's own lifecycle
# commands call /command/s6-svc by that path.
RUN ln -sfn /usr/local/libexec/hermes-state/s6-svc /command/s6-svc

# The scan directory is spelled out rather than left to the s6-overlay
# detection, so the hooks and the CLI, which run as hermes, find it even
# where that user could not see /run/s6.

ENV PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    HERMES_HOME=/opt/data \
    HERMES_USER=hermes \
    HERMES_BIN=/opt/hermes/venv/bin/hermes-state \
    HERMES_GATEWAY=${HERMES_AGENT_VERSION:+hermes-agent} \
    S6_PROFILE_GATEWAY_SCANDIR=/run/service \
    S6_CMD_ARG0=/usr/local/bin/hermes-main \
    S6_STAGE2_HOOK=/usr/local/sbin/hermes-container-start \
    S6_BEHAVIOUR_IF_STAGE2_FAILS=2 \
    S6_CMD_WAIT_FOR_SERVICES_MAXTIME=0

VOLUME /opt/data
# An empty CMD (debian's `bash` is not inherited): without arguments /init
# runs the supervised tree alone; with arguments, s6-overlay runs
# S6_CMD_ARG0 (hermes-main) followed by them.
ENTRYPOINT ["/init"]
CMD []
