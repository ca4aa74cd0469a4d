# signet: see README.md. `make run` and `make test` are the two entry points.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
GOLANGCI_LINT := $(BIN)/golangci-lint
TOOLS_MOD := hack/tools/go.mod
TEST_FLAGS ?= -race -count=1 -timeout 40m
TEST_PKGS ?= ./...

.PHONY: all
all: build

##@ Tools (built from the Go module proxy, pinned in hack/tools/go.mod)

$(CONTROLLER_GEN): $(TOOLS_MOD)
	cd hack/tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(GOLANGCI_LINT): $(TOOLS_MOD)
	cd hack/tools && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: envtest-assets
envtest-assets: ## Build or find kube-apiserver, etcd and kubectl for envtest; prints their directory.
	@hack/envtest-assets.sh

##@ Generated files

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## CRDs and RBAC from the markers: the manager's role, the server-only role (no Secrets), the metrics endpoint's reviews.
	$(CONTROLLER_GEN) rbac:roleName=signet-manager-role crd paths="./api/...;./controllers/...;./internal/jwks/...;./internal/token/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=signet-jwks-server-role paths="./internal/jwks/..." \
		output:rbac:artifacts:config=config/rbac/jwks-server
	$(CONTROLLER_GEN) rbac:roleName=signet-metrics-auth-role paths="./cmd/manager/..." \
		output:rbac:artifacts:config=config/rbac/metrics-auth

.PHONY: generate
generate: $(CONTROLLER_GEN) ## DeepCopy methods from the markers.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./..."

.PHONY: verify
verify: ## Fail when regenerating changes a generated file (works on uncommitted edits too).
	@state() { git status --porcelain -- api config; git diff -- api config; }; \
	before=$$(state | sha256sum); \
	$(MAKE) --no-print-directory manifests generate >/dev/null; \
	if [ "$$(state | sha256sum)" != "$$before" ]; then \
		echo "generated files were stale and have been regenerated: review and commit them"; \
		git status --porcelain -- api config; exit 1; fi

##@ Checks

.PHONY: fmt
fmt:
	go fmt ./...

.PHONY: vet
vet:
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

.PHONY: test-go
test-go: ## Unit, envtest and end-to-end tests against a real kube-apiserver and etcd.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go test $(TEST_FLAGS) $(TEST_PKGS)

.PHONY: test
test: verify vet lint test-go ## Everything CI runs.

##@ Build and run

.PHONY: build
build:
	go build -o $(BIN)/manager ./cmd/manager

.PHONY: run
run: manifests ## Run the operator: on the configured cluster, else on an embedded local control plane.
	go build -o $(BIN)/run-local ./hack/run-local
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(BIN)/run-local

.PHONY: bench-scale
bench-scale: ## Scale benchmark: envtest, the manager binary and a server-only replica, N tenants (BENCH_SCALE_ARGS="-n 10000 -out /tmp/scale").
	go build -o $(BIN)/bench-scale ./hack/bench-scale
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(BIN)/bench-scale $(BENCH_SCALE_ARGS)

.PHONY: bench
bench:
	go test -run '^$$' -bench . -benchmem ./internal/jwks/... ./internal/token/...
