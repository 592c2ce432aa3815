# driftless container image: a static binary on a minimal base, run as a
# non-root user. Build: docker build -t driftless .
# Run: docker run -v /etc/driftless:/etc/driftless:ro -v driftless-state:/var/lib/driftless -p 8080:8080 driftless
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/driftless ./cmd/driftless \
 && mkdir -p /out/state \
 && echo 'driftless:x:65532:65532:driftless:/var/lib/driftless:/sbin/nologin' > /out/passwd \
 && echo 'driftless:x:65532:' > /out/group

# The final image holds the binary, CA certificates (for HTTPS sources and
# artifacts) and a passwd entry for the unprivileged user, nothing else.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build /out/driftless /usr/local/bin/driftless
COPY --from=build --chown=65532:65532 /out/state /var/lib/driftless
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/driftless"]
ENTRYPOINT ["/usr/local/bin/driftless"]
CMD ["serve", "--config", "/etc/driftless/driftless.yaml", "--listen", "0.0.0.0:8080"]
