# An image holding nothing but the static `artifact` binary.
#
# An example: no Docker engine runs where this project is built and tested,
# so this file is not built by CI. What it makes is what `make release-check`
# does test: the static binary alone in an empty root (no libc, no /etc, no
# CA files: the Mozilla roots compiled into the binary are trusted; mount a
# PEM file and set SSL_CERT_FILE, or AWS_CA_BUNDLE for S3, for a private CA).
#
#   make static
#   docker build -t artifact .
#   docker build -t artifact:arm64 --platform linux/arm64 --build-arg TRIPLE=aarch64-unknown-linux-musl .
#   docker run --rm artifact --version
#
# To use it in another image: COPY --from=artifact /artifact /usr/local/bin/artifact
# (Send only what is needed: a .dockerignore with `*` and `!target/*-musl/release/artifact`
# keeps the build context small.)
ARG TRIPLE=x86_64-unknown-linux-musl

FROM scratch
ARG TRIPLE
COPY target/${TRIPLE}/release/artifact /artifact
ENTRYPOINT ["/artifact"]
