# artifact: the two commands a fresh machine needs are `make demo` and `make test`.
# `make test` installs what the checks need (idempotently), then runs them all.

CARGO ?= cargo
BIN := target/release/artifact

.PHONY: all build release-build demo test install fmt-check clippy doc unit-and-integration soak

all: build

build:
	$(CARGO) build

release-build:
	$(CARGO) build --release

# Build, then push -> pull -> yank on the local backend: no server, no account.
demo: release-build
	@sh scripts/demo.sh $(BIN)

# Every check CI runs.
test: install fmt-check clippy doc unit-and-integration soak release-check

# What the checks need, installed only when missing.
install:
	@sh scripts/install-test-deps.sh

fmt-check:
	$(CARGO) fmt --all -- --check

# Also for Windows and macOS (the code and its unit tests), so Unix-only code
# cannot come back; zig (cargo-zigbuild) compiles ring's C for macOS.
clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@sh scripts/release-check/deps.sh build
	$(CARGO) clippy --target x86_64-pc-windows-gnu --lib --bin artifact --profile test -- -D warnings
	$(CARGO) clippy --target x86_64-pc-windows-gnu --lib --bin artifact -- -D warnings
	cargo-zigbuild clippy --target aarch64-apple-darwin --lib --bin artifact --profile test -- -D warnings
	cargo-zigbuild clippy --target aarch64-apple-darwin --lib --bin artifact -- -D warnings

# The module docs are the architecture's second half: they must build clean.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --document-private-items

unit-and-integration:
	$(CARGO) test --workspace --all-targets

# Thousands of files through random injected faults; prints its seed
# (replay: SOAK_SEED=<seed> make soak) and "N files, M bytes, K faults injected, 0 lost".
soak:
	$(CARGO) test --test integration -- soak --ignored --nocapture

# Coverage-guided fuzzing (fuzz/) of the parsers that read what others wrote:
# S3's XML, the Hub's JSON, journals, temporary names, keys to paths. Each
# target runs FUZZ_SECONDS (default 60), one after another; cargo-fuzz on the
# stable toolchain, no sanitizer. New inputs go to fuzz/target/corpus/, not
# to the committed fuzz/corpus/, which `make test` replays as unit tests.
# Never part of `make test`.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := list_objects error_xml hub_answer journal temp_name local_path
FUZZ_BIN = fuzz/target/$$(rustc -vV | sed -n 's/^host: //p')/release
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	cd fuzz && $(CARGO) fuzz build --sanitizer none
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/corpus/$$t fuzz/artifacts/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
		$(FUZZ_BIN)/$$t fuzz/target/corpus/$$t fuzz/corpus/$$t \
			-artifact_prefix=fuzz/artifacts/$$t/ -max_total_time=$(FUZZ_SECONDS) \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1; \
	done

# Benchmarks against s5cmd, the AWS CLI and rclone (bench/README.md); never part
# of `make test`. BENCH_REPS=5, BENCH_1GIB=1 and BENCH_SCALE=1 widen it.
.PHONY: bench
bench: release-build
	BENCH_ARTIFACT=$(CURDIR)/$(BIN) sh bench/run.sh

# Ship it: static musl binaries for Linux x86_64 and arm64, macOS x86_64 and
# arm64, Windows x86_64; the release files in dist/ (archives + checksums, for
# install.sh), and the checks of them all.
.PHONY: static release release-check

static:
	@sh scripts/static.sh

release: static
	@sh scripts/release.sh

release-check:
	@MAKE="$(MAKE)" sh scripts/release-check.sh
