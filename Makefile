# vizops Makefile. `make help` lists the targets. Every target installs what it needs
# (pinned, into bin/ or via apt), idempotently, so a fresh clone works.

IMG ?= ghcr.io/vizops/viz-operator:dev
# The sandbox Pod image (Dockerfile.sandbox: the sandbox-agent and Debian's Python).
SANDBOX_IMG ?= ghcr.io/vizops/sandbox:dev
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CRD_REF_DOCS_VERSION ?= v0.3.0
# Debian packages the demo needs: the Local sandbox (bubblewrap, Python and its plotting
# libraries, a font) and etcd for the embedded control plane.
DEMO_APT_PACKAGES ?= bubblewrap etcd-server python3-matplotlib python3-numpy python3-pandas \
	python3-seaborn python3-plotly fonts-dejavu-core
# What the tests need on top: a headless browser for the HTML/SVG checks. (Node.js for the
# E2B client conformance test: conformance-deps.)
TEST_APT_PACKAGES ?= chromium
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

.PHONY: seccomp-profile
seccomp-profile: ## Write the sandbox agent's Localhost seccomp profile (config/seccomp/sandbox-agent.json) from internal/sandbox/seccompprofile.
	go run ./hack/seccomp-profile

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
lint: vet golangci-lint ## golangci-lint with the Kubernetes API linter on api/ (.golangci.yml), gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GOLANGCI_LINT) run ./...

.PHONY: deps
deps: ## Install the Debian packages the demo needs (apt; skipped when present).
	@$(call apt-install,$(DEMO_APT_PACKAGES),about 2 minutes)

.PHONY: test-deps
test-deps: deps ## Install what the tests need on top (chromium; apt, skipped when present).
	@$(call apt-install,$(TEST_APT_PACKAGES),about 2 minutes)

# apt-install installs the packages of $(1) that are missing, saying first how long it
# takes ($(2)), so a first run never looks hung.
define apt-install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "first run: installing$$missing with apt ($(2))"; \
  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
fi
endef

.PHONY: envtest
envtest: ## Find or build the envtest binaries (kube-apiserver, etcd); prints their directory.
	@hack/envtest-assets.sh

.PHONY: conformance-deps
conformance-deps: ## Install Node.js and npm (apt, when node is missing) and E2B's pinned JS client (npm ci) for the conformance test.
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "first run: installing nodejs npm with apt (about 2 minutes)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	fi
	@cd test/conformance/e2b-js && \
	if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then npm ci --prefer-offline --no-audit --no-fund; fi

.PHONY: test-conformance
test-conformance: deps conformance-deps ## Drive the sandbox-agent (on 127.0.0.1:49999) with E2B's official JS client, @e2b/code-interpreter.
	go test -count=1 -run TestE2BJSClient -v ./test/conformance/

.PHONY: test
test: test-deps conformance-deps manifests generate lint helm kustomize ## Run all tests: unit, sandbox abuse, envtest controller tests, and the E2B conformance test.
	@assets=$$(hack/envtest-assets.sh) && \
	KUBEBUILDER_ASSETS="$$assets" go test $(GO_TEST_FLAGS) ./... 2>&1 | tee bin/test.log

# Flags of the end-to-end benchmark (go run ./hack/bench/e2e -h), e.g. BENCH_E2E_FLAGS="-waiting 50,500".
BENCH_E2E_FLAGS ?=

.PHONY: bench
bench: deps manifests ## Run the benchmarks: the sandbox ratios, then the operator end to end on an embedded control plane (15 to 25 minutes; longer on a loaded machine).
	hack/bench/run.sh
	@mkdir -p $(LOCALBIN)
	go build -o $(LOCALBIN)/bench-e2e ./hack/bench/e2e
	$(LOCALBIN)/bench-e2e $(BENCH_E2E_FLAGS)

##@ End to end

# The e2e cluster's node: a kubelet the container runtime supports (Debian 12's
# containerd 1.6; Kubernetes 1.35 is the last to support containerd 1.x, and a kubelet
# may be 3 minors older than the API server), kube-scheduler and kube-controller-manager
# of the API server's version. docs/e2e.md explains every choice.
E2E_KUBELET_VERSION ?= 1.34.4
# kube-router's network-policy firewall enforces the sandboxes' NetworkPolicies (the
# newest version the Go module proxy serves); it needs iptables, ipset, and kmod's
# modprobe where br_netfilter is a module.
E2E_KUBE_ROUTER_VERSION ?= 2.1.0
E2E_APT_PACKAGES ?= containerd runc containernetworking-plugins mmdebstrap iptables ipset kmod
E2E_DIR ?= $(LOCALBIN)/e2e
E2E_GINKGO_FLAGS ?=

.PHONY: e2e-deps
e2e-deps: deps ## Install what the e2e cluster needs: containerd, runc, CNI plugins, mmdebstrap, iptables, ipset (apt, skipped when present).
	@$(call apt-install,$(E2E_APT_PACKAGES),about 1 minute)

.PHONY: e2e-binaries
e2e-binaries: ## Find or build the e2e cluster's Kubernetes binaries and kube-router into the machine-wide cache and link them into bin/e2e/ (first time 35 to 55 minutes on 2 cores; then instant).
	@mkdir -p $(E2E_DIR)
	@assets=$$(hack/envtest-assets.sh) && \
	k8s=$$(basename "$$assets") && \
	node=$$(hack/e2e/build-k8s.sh $(E2E_KUBELET_VERSION) kubelet) && \
	cp=$$(hack/e2e/build-k8s.sh "$$k8s" kube-scheduler kube-controller-manager) && \
	kr=$$(hack/e2e/build-kube-router.sh $(E2E_KUBE_ROUTER_VERSION)) && \
	ln -sfn "$$assets" $(E2E_DIR)/assets && \
	ln -sf "$$kr/kube-router" $(E2E_DIR)/kube-router && \
	ln -sf "$$node/kubelet" $(E2E_DIR)/kubelet && \
	ln -sf "$$cp/kube-scheduler" $(E2E_DIR)/kube-scheduler && \
	ln -sf "$$cp/kube-controller-manager" $(E2E_DIR)/kube-controller-manager

.PHONY: e2e-images
e2e-images: e2e-deps ## Build the sandbox image (Dockerfile.sandbox's recipe, with mmdebstrap) and the pause image as OCI archives in bin/e2e/images/ (first time a few minutes).
	go run ./hack/images/build -out $(E2E_DIR)/images

.PHONY: e2e
e2e: e2e-deps conformance-deps manifests e2e-binaries e2e-images ## Run the e2e suite on a real one-node cluster (kubelet, containerd, runc, CNI bridge, kube-router's NetworkPolicy firewall) started and torn down here; needs root. Logs and timings: bin/e2e/logs/.
	@[ "$$(id -u)" = 0 ] || { echo "make e2e runs containerd and a kubelet: run it as root"; exit 1; }
	go build -o $(LOCALBIN)/manager ./cmd
	go build -o $(LOCALBIN)/gateway ./cmd/gateway
	@mkdir -p $(E2E_DIR)/logs
	VIZOPS_E2E=1 KUBEBUILDER_ASSETS=$$(readlink -f $(E2E_DIR)/assets) \
	E2E_KUBELET=$(E2E_DIR)/kubelet E2E_KUBE_SCHEDULER=$(E2E_DIR)/kube-scheduler \
	E2E_KUBE_CONTROLLER_MANAGER=$(E2E_DIR)/kube-controller-manager E2E_KUBE_ROUTER=$(E2E_DIR)/kube-router \
	E2E_IMAGES=$(E2E_DIR)/images E2E_MANAGER=$(LOCALBIN)/manager E2E_GATEWAY=$(LOCALBIN)/gateway E2E_LOG_DIR=$(E2E_DIR)/logs \
	go test -count=1 -v -timeout 60m ./test/e2e/ -ginkgo.label-filter=e2e -ginkgo.v $(E2E_GINKGO_FLAGS) 2>&1 | tee $(E2E_DIR)/test.log
	@echo "timings: $(E2E_DIR)/logs/report.txt"; cat $(E2E_DIR)/logs/report.txt

##@ First run

.PHONY: demo
demo: deps manifests ## Run the operator on an embedded control plane, apply config/samples/ and save the charts to demo-out/.
	@mkdir -p $(LOCALBIN)
	go build -o $(LOCALBIN)/demo ./hack/demo
	$(LOCALBIN)/demo $(DEMO_FLAGS)

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager, the kubectl plugin and the sandbox-agent into bin/.
	go build -o bin/manager ./cmd
	go build -o bin/kubectl-viz ./cmd/kubectl-viz
	go build -o bin/sandbox-agent ./cmd/sandbox-agent

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run ./cmd

##@ Deploy

KUBECTL ?= kubectl
# docker or podman. No container engine runs on the development VM: docker-build and
# docker-push run on a workstation or in CI.
CONTAINER_TOOL ?= docker
# The image name config/manager/kustomization.yaml sets; IMG replaces it at build time.
IMG_NAME_IN_CONFIG ?= ghcr.io/vizops/viz-operator
ignore-not-found ?= false
INSTALLER_DIR ?= $(LOCALBIN)/installer

# kustomize-default writes, to stdout, config/default with the manager image set to IMG.
# It builds a throwaway overlay under bin/, so config/ is never edited.
define kustomize-default
rm -rf $(INSTALLER_DIR) && mkdir -p $(INSTALLER_DIR) && \
printf 'resources:\n- %s\n' "$$(realpath -m --relative-to=$(INSTALLER_DIR) $(CURDIR)/config/default)" > $(INSTALLER_DIR)/kustomization.yaml && \
(cd $(INSTALLER_DIR) && $(KUSTOMIZE) edit set image $(IMG_NAME_IN_CONFIG)=$(IMG)) && \
$(KUSTOMIZE) build $(INSTALLER_DIR)
endef

.PHONY: helm-crds
helm-crds: manifests ## Copy the CRDs and the generated RBAC role from config/ into the Helm chart.
	@mkdir -p charts/viz-operator/crds charts/viz-operator/files
	rm -f charts/viz-operator/crds/*.yaml
	cp config/crd/bases/*.yaml charts/viz-operator/crds/
	cp config/rbac/role.yaml charts/viz-operator/files/role.yaml

.PHONY: docker-build
docker-build: ## Build the manager image IMG with CONTAINER_TOOL (needs a container engine).
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image IMG.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: docker-build-sandbox
docker-build-sandbox: ## Build the sandbox Pod image SANDBOX_IMG (Dockerfile.sandbox) with CONTAINER_TOOL. Needs a container engine; none runs on the development VM (make e2e builds the same recipe without one).
	$(CONTAINER_TOOL) build -f Dockerfile.sandbox -t $(SANDBOX_IMG) .

.PHONY: docker-push-sandbox
docker-push-sandbox: ## Push the sandbox Pod image SANDBOX_IMG.
	$(CONTAINER_TOOL) push $(SANDBOX_IMG)

.PHONY: build-installer
build-installer: manifests helm-crds kustomize ## Write dist/install.yaml: CRDs, RBAC and the manager (image IMG) from config/default.
	@mkdir -p dist
	@$(kustomize-default) > dist/install.yaml
	@echo "wrote dist/install.yaml (image $(IMG)); install with: kubectl apply --server-side -f dist/install.yaml"

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs (and so every request and pool). ignore-not-found=true to ignore missing ones.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy config/default (image IMG), the default SandboxClass and the default SandboxPool to the current cluster.
	@$(kustomize-default) | $(KUBECTL) apply --server-side -f -
	$(KUBECTL) wait --for condition=established --timeout=60s crd/sandboxpools.viz.vizops.io crd/sandboxclasses.viz.vizops.io
	$(KUBECTL) apply --server-side -f config/samples/viz_v1alpha1_sandboxclass_kubernetes.yaml
	$(KUBECTL) apply --server-side -n viz-system -f config/samples/viz_v1alpha1_sandboxpool_kubernetes.yaml

.PHONY: undeploy
undeploy: kustomize ## Remove what deploy created. ignore-not-found=true to ignore missing objects.
	-$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -n viz-system -f config/samples/viz_v1alpha1_sandboxpool_kubernetes.yaml
	-$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f config/samples/viz_v1alpha1_sandboxclass_kubernetes.yaml
	@$(kustomize-default) | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	@echo "first run: building controller-gen (about 1 minute)"
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Install crd-ref-docs into bin/.
$(CRD_REF_DOCS):
	@mkdir -p $(LOCALBIN)
	@echo "first run: building crd-ref-docs (about 1 minute)"
	GOBIN=$(LOCALBIN) go install github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION)

KUSTOMIZE ?= $(LOCALBIN)/kustomize
# v5.8.3 needs Go 1.27; v5.8.2 is the newest that builds with Go 1.26.
KUSTOMIZE_VERSION ?= v5.8.2
HELM ?= $(LOCALBIN)/helm
HELM_VERSION ?= v3.22.0
# The Kubernetes minor of helm's client-go: helm template's default --kube-version.
HELM_K8S_MINOR ?= 37
HELM_LDFLAGS ?= -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)

# golangci-lint built with sigs.k8s.io/kube-api-linter as a module plugin: one binary runs
# both (kube-api-linter publishes no tags; this pseudo-version pins golangci-lint v2.5.0).
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-kube-api-linter
KUBE_API_LINTER_VERSION ?= v0.0.0-20260716143926-092fe0c72997

.PHONY: golangci-lint
golangci-lint: ## Install golangci-lint with the Kubernetes API linter into bin/ (pinned; built from the Go module proxy, about 6 minutes the first time).
	$(call go-install-tool,$(GOLANGCI_LINT),sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter,$(KUBE_API_LINTER_VERSION),,about 6 minutes on 2 cores)

.PHONY: kustomize
kustomize: ## Install kustomize into bin/ (pinned; from the Go module proxy).
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION),,about 1 minute)

.PHONY: helm
helm: ## Install helm into bin/ (pinned; built from the Go module proxy, a few minutes the first time).
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION),-ldflags "$(HELM_LDFLAGS)",about 3 minutes on 2 cores)

# go-install-tool installs package $(2) at version $(3) as $(1)-$(3), with extra go install
# flags $(4), saying first how long that takes ($(5)), and links $(1) to it. Nothing
# happens when $(1)-$(3) exists.
define go-install-tool
@[ -f "$(1)-$(3)" ] || { \
set -e; \
mkdir -p $(LOCALBIN); \
echo "first run: building $(2)@$(3) into $(LOCALBIN) ($(5))"; \
rm -f $(1); \
GOBIN=$(LOCALBIN) go install $(4) $(2)@$(3); \
mv $(1) $(1)-$(3); \
}; \
ln -sf $(notdir $(1))-$(3) $(1)
endef
