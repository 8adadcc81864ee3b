#!/usr/bin/env bash
# Build the real Dex and oauth2-proxy from their Go modules into .cache/bin.
# Rebuilds only when the pinned version changes (a stamp file sits beside each binary).
set -euo pipefail

DEX_VERSION="v2.45.1"
# Dex's module path has no /v2, so its tags are not module versions: pin the
# tag's commit as a pseudo-version.
DEX_PSEUDO="v0.0.0-20260303133905-11d2eeb52b42"
OAUTH2_PROXY_VERSION="v7.15.6"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KFP_AUTH_CACHE:-$root/.cache}"
bin="$cache/bin"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

command -v go >/dev/null || { echo "build-stack: Go is required (go >= 1.25)" >&2; exit 1; }

if [[ "$(cat "$bin/dex.version" 2>/dev/null)" != "$DEX_VERSION" || ! -x "$bin/dex" ]]; then
  echo "build-stack: building Dex $DEX_VERSION ($DEX_PSEUDO)" >&2
  # Dex's go.mod has a replace directive, so `go install dex@ver` refuses it;
  # a wrapper module that requires Dex as a tool builds it instead.
  w="$cache/dex-wrapper"
  rm -rf "$w" && mkdir -p "$w"
  (cd "$w" && go mod init kfp-auth.test/dex-wrapper >/dev/null 2>&1 \
     && go get -tool "github.com/dexidp/dex/cmd/dex@$DEX_PSEUDO" \
     && go build -trimpath -o "$bin/dex" github.com/dexidp/dex/cmd/dex)
  echo "$DEX_VERSION" > "$bin/dex.version"
fi

if [[ "$(cat "$bin/oauth2-proxy.version" 2>/dev/null)" != "$OAUTH2_PROXY_VERSION" || ! -x "$bin/oauth2-proxy" ]]; then
  echo "build-stack: building oauth2-proxy $OAUTH2_PROXY_VERSION" >&2
  GOBIN="$bin" go install -trimpath "github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION"
  echo "$OAUTH2_PROXY_VERSION" > "$bin/oauth2-proxy.version"
fi
# Our own client of Dex's gRPC admin API (tests/stack/dexapi): revokes refresh tokens.
dexapi_src="$root/tests/stack/dexapi"
dexapi_stamp="$(cat "$dexapi_src/go.mod" "$dexapi_src/go.sum" "$dexapi_src/main.go" | sha256sum | cut -c1-16)"
if [[ "$(cat "$bin/dexapi.version" 2>/dev/null)" != "$dexapi_stamp" || ! -x "$bin/dexapi" ]]; then
  echo "build-stack: building dexapi" >&2
  (cd "$dexapi_src" && go build -trimpath -o "$bin/dexapi" .)
  echo "$dexapi_stamp" > "$bin/dexapi.version"
fi
echo "build-stack: dex $DEX_VERSION, oauth2-proxy $OAUTH2_PROXY_VERSION in $bin" >&2
