# amlops — see README.md. CARGO_TARGET_DIR may point outside the clone (CI does).
CARGO ?= cargo
AMLOPS = $(CARGO) run --quiet --bin amlops --

.PHONY: run test crds lint bench image deploy-check

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

IMAGE ?= ghcr.io/amlops/amlops
image:
	docker build -t $(IMAGE):$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) .

deploy-check:
	python3 tests/deploy/check.py
