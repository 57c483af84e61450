# The rollguard image: the CLI, and the agent `rollguard verify` runs on
# each node (`rollguard agent`). Build it, push it where your cluster pulls
# from, and pass it to verify:
#
#   docker build -t registry.example.com/rollguard:dev --build-arg VERSION=dev .
#   docker push registry.example.com/rollguard:dev
#   rollguard verify deployment/orders -n shop --image registry.example.com/rollguard:dev
#
# The e2e tier builds the same binary into an image without Docker
# (hack/mkimage), since its cluster pulls nothing.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/rollguard/rollguard/internal/version.version=${VERSION}" \
      -o /out/rollguard ./cmd/rollguard

# A static binary needs no OS: no shell, no package manager, nonroot. The
# agent listens on 8642, above the privileged ports.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rollguard /rollguard
USER 65532:65532
ENTRYPOINT ["/rollguard"]
