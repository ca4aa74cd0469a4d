# signet: see README.md. `make run` and `make test` are the two entry points,
# `make unit` the fast loop, `make help` the list.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
GOLANGCI_LINT := $(BIN)/golangci-lint
HELM := $(BIN)/helm
PROMTOOL := $(BIN)/promtool
TOOLS_MOD := hack/tools/go.mod
TEST_FLAGS ?= -race -count=1 -timeout 40m
TEST_PKGS ?= ./...
UNIT_FLAGS ?=

##@ General

.PHONY: all
all: build ## The default: build the manager.

# help prints the targets that have a `## comment`, under the `##@`
# headings; the tool targets are printed with their (absolute) paths.
.PHONY: help
help: ## Print every target with what it does.
	@sed -e 's|^$$(CONTROLLER_GEN):|$(CONTROLLER_GEN):|' -e 's|^$$(GOLANGCI_LINT):|$(GOLANGCI_LINT):|' $(MAKEFILE_LIST) | \
		awk 'BEGIN { FS = ":.*## " } \
		/^##@/ { printf "\n%s\n", substr($$0, 5); next } \
		/^[a-zA-Z0-9_.\/-]+:.*## / { if (length($$1) > 16) printf "  %s\n  %-16s %s\n", $$1, "", $$2; \
			else printf "  %-16s %s\n", $$1, $$2 }'

##@ Tools (built from the Go module proxy, pinned in hack/tools/go.mod, hack/helm/go.mod, hack/promtool/go.mod)

$(CONTROLLER_GEN): $(TOOLS_MOD) ## Build controller-gen into bin/.
	cd hack/tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(GOLANGCI_LINT): $(TOOLS_MOD) ## Build golangci-lint into bin/.
	cd hack/tools && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# helm and promtool have large dependency trees of their own: one module each.
$(HELM): hack/helm/go.mod ## helm, for the chart's lint, template and dry-run tests.
	cd hack/helm && go build -o $@ helm.sh/helm/v4/cmd/helm

$(PROMTOOL): hack/promtool/go.mod ## promtool, for the alert rules' checks and unit tests.
	cd hack/promtool && go build -o $@ github.com/prometheus/prometheus/cmd/promtool

.PHONY: envtest-assets
envtest-assets: ## Build or find kube-apiserver, etcd and kubectl for envtest; prints their directory.
	@hack/envtest-assets.sh

##@ Generated files

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## CRDs and RBAC from the markers: the manager's role, the server-only role (no Secrets), the metrics endpoint's reviews; their copies in the chart.
	$(CONTROLLER_GEN) rbac:roleName=signet-manager-role crd paths="./api/...;./controllers/...;./internal/jwks/...;./internal/token/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=signet-jwks-server-role paths="./internal/jwks/..." \
		output:rbac:artifacts:config=config/rbac/jwks-server
	$(CONTROLLER_GEN) rbac:roleName=signet-metrics-auth-role paths="./cmd/manager/..." \
		output:rbac:artifacts:config=config/rbac/metrics-auth
	@# The chart ships the same CRDs, generated roles and alerts (make verify sees stale copies).
	rm -f charts/signet/crds/*.yaml && cp config/crd/bases/*.yaml charts/signet/crds/
	cp config/rbac/role.yaml charts/signet/files/rbac/manager-role.yaml
	cp config/rbac/jwks-server/role.yaml charts/signet/files/rbac/jwks-server-role.yaml
	cp config/rbac/metrics-auth/role.yaml charts/signet/files/rbac/metrics-auth-role.yaml
	cp config/prometheus/prometheusrule.yaml config/prometheus/dashboard.json charts/signet/files/prometheus/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## DeepCopy methods from the markers.
	$(CONTROLLER_GEN) object paths="./..."

.PHONY: verify
verify: ## Fail when regenerating changes a generated file (works on uncommitted edits too).
	@state() { git status --porcelain -- api config charts; git diff -- api config charts; }; \
	before=$$(state | sha256sum); \
	$(MAKE) --no-print-directory manifests generate >/dev/null; \
	if [ "$$(state | sha256sum)" != "$$before" ]; then \
		echo "generated files were stale and have been regenerated: review and commit them"; \
		git status --porcelain -- api config charts; exit 1; fi

##@ Checks

.PHONY: fmt
fmt: ## Format the Go sources.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint, with the package boundaries (.golangci.yml).
	$(GOLANGCI_LINT) run ./...

# unit never builds or looks for envtest assets: in -short mode the tests
# that need a control plane skip (internal/testenv), the rest run.
.PHONY: unit
unit: $(HELM) $(PROMTOOL) ## The fast loop: every test that needs no control plane (go test -short; UNIT_FLAGS=-race adds the race detector).
	HELM=$(HELM) PROMTOOL=$(PROMTOOL) go test -short $(UNIT_FLAGS) ./...

# unit-alone is make unit as a machine without envtest assets runs it
# (KUBEBUILDER_ASSETS unset, an empty asset cache): a package that starts
# a control plane in -short mode, or fails without one, fails here.
.PHONY: unit-alone
unit-alone: $(HELM) $(PROMTOOL) ## make unit with no envtest assets at all (make test runs it).
	cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && \
	env -u KUBEBUILDER_ASSETS SIGNET_CACHE="$$cache" $(MAKE) --no-print-directory unit && \
	if [ -n "$$(ls -A "$$cache")" ]; then echo "make unit wrote to the envtest asset cache"; exit 1; fi

.PHONY: test-go
test-go: $(HELM) $(PROMTOOL) ## Unit, envtest and end-to-end tests against a real kube-apiserver and etcd (the chart's and alerts' tests run helm and promtool).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" HELM=$(HELM) PROMTOOL=$(PROMTOOL) go test $(TEST_FLAGS) $(TEST_PKGS)

.PHONY: test-ship
test-ship: ## Only what ships: the image and Dockerfile, the chart (helm lint/template, RBAC against config/rbac, server dry runs), the alerts (promtool), the plugin.
	$(MAKE) --no-print-directory test-go TEST_PKGS="./hack/image/... ./charts/... ./config/prometheus/... ./cmd/kubectl-signet/..."

.PHONY: test
test: verify vet lint unit-alone test-go ## Everything CI runs.

##@ Build and run

.PHONY: build
build: ## Build the manager into bin/manager.
	go build -o $(BIN)/manager ./cmd/manager

# The image's tag and labels: from git when there is a checkout, else dev.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_REPO ?= signet
IMAGE_ARCHIVE ?= $(BIN)/signet-image.tar

.PHONY: image
image: ## Build the image without Docker into bin/signet-image.tar (docker load, ctr import, kind load image-archive); OCI_LAYOUT=dir adds an OCI layout.
	go run ./hack/image -o $(IMAGE_ARCHIVE) -repo $(IMAGE_REPO) -version $(VERSION) -revision "$(REVISION)" \
		-created $(SOURCE_DATE_EPOCH) $(if $(OCI_LAYOUT),-oci-layout $(OCI_LAYOUT))

.PHONY: docker-build
docker-build: ## The same image with Docker and the Dockerfile, tagged $(IMAGE_REPO):$(VERSION).
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE_REPO):$(VERSION) .

.PHONY: run
run: manifests ## Run the operator: on the configured cluster, else on an embedded local control plane.
	go build -o $(BIN)/run-local ./hack/run-local
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(BIN)/run-local

.PHONY: bench-scale
bench-scale: ## Scale benchmark: envtest, the manager binary and a server-only replica, N tenants (BENCH_SCALE_ARGS="-n 10000 -out /tmp/scale").
	go build -o $(BIN)/bench-scale ./hack/bench-scale
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(BIN)/bench-scale $(BENCH_SCALE_ARGS)

.PHONY: bench
bench: ## The JWKS server's and the token API's benchmarks (docs/performance.md).
	go test -run '^$$' -bench . -benchmem ./internal/jwks/... ./internal/token/...
