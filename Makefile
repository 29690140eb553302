# vizops Makefile. `make help` lists the targets. Every target installs what it needs
# (pinned, into bin/ or via apt), idempotently, so a fresh clone works.

IMG ?= ghcr.io/vizops/viz-operator:dev
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CRD_REF_DOCS_VERSION ?= v0.3.0
# Debian packages the Local sandbox, envtest and the browser checks need.
APT_PACKAGES ?= bubblewrap etcd-server python3-matplotlib python3-numpy python3-pandas \
	python3-seaborn python3-plotly fonts-dejavu-core chromium
GO_TEST_FLAGS ?= -timeout 40m

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs
export PATH := $(LOCALBIN):$(PATH)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRDs and the manager's RBAC role.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: api-docs
api-docs: crd-ref-docs ## Generate docs/api.md from the API types.
	$(CRD_REF_DOCS) --source-path=./api --config=hack/api-docs/config.yaml --renderer=markdown --output-path=docs/api.md

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: vet ## gofmt check and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: deps
deps: ## Install the Debian packages the sandbox and tests need (apt; skipped when present).
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: envtest
envtest: ## Find or build the envtest binaries (kube-apiserver, etcd); prints their directory.
	@hack/envtest-assets.sh

.PHONY: test
test: deps manifests generate vet ## Run all tests: unit, sandbox abuse, and envtest controller tests.
	@assets=$$(hack/envtest-assets.sh) && \
	KUBEBUILDER_ASSETS="$$assets" go test $(GO_TEST_FLAGS) ./... 2>&1 | tee bin/test.log

.PHONY: bench
bench: deps ## Run the sandbox benchmarks (ratios against the in-process floor).
	go test -run '^$$' -bench . -benchtime 20x ./internal/sandbox/...

##@ First run

.PHONY: demo
demo: deps manifests ## Run the operator on an embedded control plane, apply config/samples/ and save the charts to demo-out/.
	@mkdir -p $(LOCALBIN)
	go build -o $(LOCALBIN)/demo ./hack/demo
	$(LOCALBIN)/demo $(DEMO_FLAGS)

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager and the kubectl plugin into bin/.
	go build -o bin/manager ./cmd
	go build -o bin/kubectl-viz ./cmd/kubectl-viz

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run ./cmd

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Install crd-ref-docs into bin/.
$(CRD_REF_DOCS):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION)
