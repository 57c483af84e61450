# Conveniences over the scripts in hack/ and bench/; the scripts are the
# source of truth, so a machine without make can run them directly.
.PHONY: build test verify unit fuzz docs golden bench
build:
	go build -o bin/rollguard ./cmd/rollguard
test:
	hack/test.sh
verify:
	hack/verify.sh
unit:
	go test ./...
fuzz:
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-1m} ./pkg/manifest
docs:
	go run ./hack/gendocs
# Rewrites the golden reports after an intended change; review the diff.
golden:
	go test ./internal/cli -run TestGoldenCorpus -update
	go test ./pkg/fix -run TestGolden -update
bench:
	bench/audit/run.sh
	bench/traffic/run.sh
# Regenerates the kustomize base deploy/webhook/rollguard.yaml from the chart
# charts/rollguard (a test fails while it is out of date).
.PHONY: webhook-base
webhook-base:
	hack/gen-webhook-base
