# syntax=docker/dockerfile:1
# The herd server as a static binary in a distroless image that runs as the
# non-root user 65532. The orchestrator mounts the configuration at
# /etc/herd/herd.yaml (read-only) and a volume at /var/lib/herd, where the
# configuration keeps data_dir, log_dir and run_dir, and appends the
# server's name to the command. deploy/herd.docker.yaml is such a
# configuration, for one server:
#
#   docker build --build-arg VERSION="$(git describe --always --dirty)" -t herd:latest .
#   docker run -d --name herd-alford --read-only -p 11550:11550 -p 127.0.0.1:12550:12550 \
#     -v "$PWD/deploy/herd.docker.yaml:/etc/herd/herd.yaml:ro" -v herd-alford:/var/lib/herd \
#     -e HERD_PEER_SECRET herd:latest serve -config /etc/herd/herd.yaml Alford

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# herd version prints VERSION; without it, "(devel)", as .git is not copied.
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/herd-dev/herd/internal/buildinfo.version=${VERSION}" -o /herd ./cmd/herd
# The runtime image has no shell to make folders with.
RUN mkdir /data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /herd /herd
COPY --from=build --chown=65532:65532 /data /var/lib/herd
USER 65532:65532
VOLUME ["/etc/herd", "/var/lib/herd"]
EXPOSE 11550 12550
ENTRYPOINT ["/herd"]
CMD ["serve", "-config", "/etc/herd/herd.yaml"]
