# knnmem: the memory server (knnmem-server) and its CLI (knnmem) on Debian 12.
#
#   make image                          # docker if an engine answers, else podman
#   docker build -t knnmem .            # or by hand (podman: add --format docker,
#                                       # or HEALTHCHECK is dropped)
#   docker run --rm -p 50051:50051 -p 9464:9464 -v knnmem-data:/data \
#     -v "$PWD/deploy/secrets/knnmem-tokens:/run/secrets/knnmem-tokens:ro" knnmem
#
# Secure by default: the server reads its bearer tokens from
# /run/secrets/knnmem-tokens (where compose `secrets:` puts them; see
# scripts/make-tokens and README "Security") and does not start without them.
# Serving 0.0.0.0 without authentication takes an explicit --insecure in
# place of the CMD.
#
# CI builds and runs this file (`make test-image`, tests/deploy/test-image.sh).

############################################################################
# Build stage
############################################################################
FROM debian:12 AS build

ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src

# Build dependencies from Debian's archive, as CI installs them (the base
# packages only: no libtorch, the model is not built). A layer of its own,
# so that a source change does not download them again.
COPY scripts/install-deps scripts/
RUN scripts/install-deps && rm -rf /var/lib/apt/lists/*

# Only what the image ships: the server and the CLI (not the tests, the
# bench or the model).
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build -j"$(nproc)" --target knnmem-server knnmem

# Keep the symbol table (readable stack traces), drop the DWARF debug info.
RUN mkdir -p /out \
 && install -m 0755 build/server/knnmem-server build/client/knnmem /out/ \
 && strip --strip-debug /out/knnmem-server /out/knnmem

############################################################################
# Runtime stage
############################################################################
FROM debian:12-slim

# Runtime shared libraries of knnmem-server and knnmem, derived from `ldd` on
# the built binaries mapped to packages with `dpkg -S` (tests/deploy/
# check-deploy.sh re-checks this list against a build when one exists):
#   gRPC, protobuf, abseil    libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
#                             (+ libc-ares2 libre2-9 libssl3 zlib1g for gRPC)
#   RocksDB                   librocksdb7.8 (+ libgflags2.2 libsnappy1v5 libbz2-1.0
#                             liblz4-1 libzstd1)
#   OpenBLAS                  libopenblas0-pthread (+ libgfortran5 libquadmath0)
#   metrics (prometheus-cpp)  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
#                             (+ libcivetweb1, its HTTP server)
#   FAISS / OpenMP            libgomp1
#   C/C++ runtime             libgcc-s1 libstdc++6 (libc6 comes with the base image)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 \
      libbz2-1.0 \
      libc-ares2 \
      libcivetweb1 \
      libgcc-s1 \
      libgflags2.2 \
      libgfortran5 \
      libgomp1 \
      libgrpc++1.51 \
      libgrpc29 \
      liblz4-1 \
      libopenblas0-pthread \
      libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 \
      libprotobuf32 \
      libquadmath0 \
      libre2-9 \
      librocksdb7.8 \
      libsnappy1v5 \
      libssl3 \
      libstdc++6 \
      libzstd1 \
      zlib1g \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /out/knnmem-server /out/knnmem /usr/local/bin/

# Non-root user 10001; /data is owned by it so that a fresh named volume is
# writable. USER is numeric so that Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 knnmem \
 && useradd --system --uid 10001 --gid knnmem --home-dir /data \
      --no-create-home --shell /usr/sbin/nologin knnmem \
 && mkdir -p /data \
 && chown knnmem:knnmem /data

VOLUME /data
# 50051: gRPC (knnmem.v1.Memory, and grpc.health.v1.Health without a token)
# 9464:  Prometheus metrics (/metrics)
EXPOSE 50051 9464

# Health needs no token. With TLS (--tls-cert), override it: this one speaks
# plaintext.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["knnmem", "--server", "127.0.0.1:50051", "--deadline-ms", "3000", "health"]

# SIGTERM (docker/podman stop, Kubernetes) drains: in-flight calls finish
# within --grace-seconds (default 20) and the server exits 0.
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["knnmem-server"]
CMD ["--listen", "0.0.0.0:50051", "--metrics-address", "0.0.0.0:9464", "--data-dir", "/data", \
     "--auth-token-file", "/run/secrets/knnmem-tokens"]
