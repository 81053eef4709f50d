# amlops — see README.md. CARGO_TARGET_DIR may point outside the clone (CI does).
CARGO ?= cargo
AMLOPS = $(CARGO) run --quiet --bin amlops --

.PHONY: run test crds lint bench fuzz image deploy-check

## The standalone quickstart: applies examples/quickstart and follows the run to completion.
run:
	$(AMLOPS) apply -f examples/quickstart --wait

## Everything CI checks: formatting, clippy, all tests, CRD drift, chart/manifest checks.
test: lint
	$(CARGO) test --workspace
	$(MAKE) deploy-check

## Regenerate crds/ (and the chart's copy) from the Rust types.
crds:
	$(AMLOPS) crd --out-dir crds
	@mkdir -p charts/amlops/crds && cp crds/*.amlops.io.yaml charts/amlops/crds/

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Benchmarks (numbers, not pass/fail).
bench:
	$(CARGO) bench --bench reconcile
	$(CARGO) bench --bench snapshot
	$(CARGO) bench --bench fleet

## Fuzzing (cargo-fuzz + libFuzzer, `cargo install cargo-fuzz`): each target in fuzz/ runs for
## FUZZ_SECONDS; a crash (panic, hang over 20 s, out of memory) fails and leaves its input in
## fuzz/artifacts/. cargo-fuzz needs nightly flags: the nightly toolchain where rustup has one,
## else the default one with RUSTC_BOOTSTRAP=1. No sanitizer: these paths are safe Rust, and
## AddressSanitizer would halve the executions. New inputs go to fuzz/corpus/ (not in git).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = manifest ignore_rules inline_source
FUZZ_TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/fuzz
FUZZ_CARGO = $(if $(shell rustup toolchain list 2>/dev/null | grep '^nightly'),cargo +nightly,RUSTC_BOOTSTRAP=1 cargo)
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t fuzz/seeds/$$t && \
		echo "fuzz: $$t for $(FUZZ_SECONDS)s" && \
		$(FUZZ_CARGO) fuzz run --sanitizer none --target-dir $(FUZZ_TARGET_DIR) $$t \
			fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=20 -print_final_stats=1 || exit 1; \
	done

IMAGE ?= ghcr.io/amlops/amlops
image:
	docker build -t $(IMAGE):$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) .

deploy-check:
	python3 tests/deploy/check.py
