# Pi0's image: pi0-agent, pi0-operator, pi0-webhook and the kubectl plugin kubectl-pi0 in
# /usr/local/bin of one image. There is
# no ENTRYPOINT: the container's command chooses the program, as the Helm chart (charts/pi0)
# does, e.g. `docker run --rm pi0:0.1.0 pi0-agent --help`. It runs as the non-root user 65532.
#
#   docker build -t pi0:0.1.0 .
#
# The build stage installs the build's Debian packages with scripts/setup.sh and builds the three
# programs in Release. The runtime stage holds the shared libraries they link (the list below;
# tests/docker/runtime_libs_test.sh proves it complete against `ldd` of a Release build) and
# openssl for the chart's `helm test`. NVML (GPU sampling) is not in the image: the agent loads
# libnvidia-ml.so.1 with dlopen, and on a GPU node the NVIDIA container toolkit mounts the
# driver's. The CUDA bandwidth probe (libpi0_cuda_probe.so) needs the CUDA toolkit at build time,
# which this Debian build stage does not have, so the image's agent runs without the probe.

FROM debian:bookworm AS build
WORKDIR /src
# The packages first, so that a change of the sources reuses this layer.
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build/image -DCMAKE_BUILD_TYPE=Release -DPI0_BUILD_TESTS=OFF -DPI0_CUDA=OFF \
    && cmake --build build/image -j "$(nproc)" \
        --target pi0-agent pi0-operator pi0-webhook kubectl-pi0 \
    && install -d /out \
    && install -s -m 0755 build/image/agent/pi0-agent build/image/operator/pi0-operator \
        build/image/webhook/pi0-webhook build/image/kubectl-pi0/kubectl-pi0 /out/ \
    && install -m 0755 kubectl-pi0/kubectl_complete-pi0 /out/

FROM debian:bookworm-slim AS runtime
# The runtime libraries of the three programs (apt adds their dependencies, such as libbrotli1;
# libc6, libgcc-s1, libstdc++6 and zlib1g are in the slim base already), and openssl for
# `helm test`'s TLS check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libcpp-httplib0.11 \
        libfftw3-double3 \
        libjemalloc2 \
        libprometheus-cpp-core1.0 \
        libsimdjson14 \
        libsqlite3-0 \
        libssl3 \
        libyaml-cpp0.7 \
        openssl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 pi0 \
    && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin pi0
# kubectl-pi0 (and kubectl_complete-pi0) is the kubectl plugin, shipped here so that it can be
# copied out of the image: docker cp "$(docker create pi0:0.1.0)":/usr/local/bin/kubectl-pi0 .
COPY --from=build /out/pi0-agent /out/pi0-operator /out/pi0-webhook /out/kubectl-pi0 \
    /out/kubectl_complete-pi0 /usr/local/bin/
USER 65532:65532
LABEL org.opencontainers.image.title="pi0" \
      org.opencontainers.image.description="Pi0: pi0-agent, pi0-operator, pi0-webhook and kubectl-pi0" \
      org.opencontainers.image.version="0.1.0"
# pi0-agent's port; pi0-operator serves 8080 (metrics) and 8081 (probes), pi0-webhook 8443.
EXPOSE 9560 8080 8081 8443
CMD ["pi0-agent", "--help"]
