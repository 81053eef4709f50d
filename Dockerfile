# syntax=docker/dockerfile:1
# amlops operator image: `docker build -t amlops .` (or `make image`).
# Build stage: release build of the `amlops` binary from the locked deps.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin amlops \
    && install -D -m 0755 target/release/amlops /out/amlops

# Runtime: distroless (glibc, CA certificates, no shell, no package manager),
# running as the unprivileged nonroot user 65532 that the chart also sets.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="amlops" \
      org.opencontainers.image.description="Kubernetes operator for Azure Machine Learning training infrastructure" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/amlops /usr/local/bin/amlops
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/amlops"]
CMD ["controller"]
