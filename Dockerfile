# The Docker way to build signet's image, for those who build with a daemon
# (docker build, buildx for other platforms). `make image` builds the same
# image without one (hack/image); hack/image/image_test.go keeps the two
# equivalent: the same go build flags, user, entrypoint and labels.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
# Static (no cgo, so no libc), reproducible (no local paths, no VCS stamp).
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /manager ./cmd/manager

# distroless static: no shell, no package manager; "nonroot" is 65532.
FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title=signet \
      org.opencontainers.image.source=https://github.com/signet-dev/signet \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION}
COPY --from=builder /manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
