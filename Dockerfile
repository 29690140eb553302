# syntax=docker/dockerfile:1
# The manager image: the manager (and the kubectl-viz plugin) on Debian bookworm with what
# the Local sandbox backend runs inside the container: bubblewrap, Debian's Python 3.11
# and the plotting libraries, and a font. `make docker-build IMG=...` builds it (a
# container engine is needed; none runs on the development VM). docs/deploy.md lists
# what the cluster must allow for bubblewrap inside a pod.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so code changes reuse the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
ARG TARGETOS=linux
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
      go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
      go build -trimpath -ldflags="-s -w" -o /out/kubectl-viz ./cmd/kubectl-viz && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
      go build -trimpath -ldflags="-s -w" -o /out/vizops-gateway ./cmd/gateway

FROM debian:bookworm-slim
# bubblewrap and python3-* are the Local backend (the sandbox sees /usr and a few /etc
# files of this image, nothing else); ca-certificates lets the manager reach HTTPS model
# providers (OpenAI, Anthropic).
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bubblewrap \
      python3-matplotlib python3-numpy python3-pandas python3-seaborn python3-plotly \
      fonts-dejavu-core \
      ca-certificates && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /out/manager /manager
COPY --from=build /out/kubectl-viz /usr/local/bin/kubectl-viz
# The E2B-compatible gateway (docs/gateway.md): the chart's gateway Deployment runs it.
COPY --from=build /out/vizops-gateway /usr/local/bin/vizops-gateway
# The Deployment sets the user too (runAsUser 65532, or 0 with the chart's
# sandboxing.separateSandboxUser); this default keeps `docker run` non-root.
USER 65532:65532
ENTRYPOINT ["/manager"]
