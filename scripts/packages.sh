#!/usr/bin/env bash
# make packages: build every agent installer for the demo organization into dist/packages
# (one .sha256 beside each). Needs the agents from `make build-agents` in $BIN and, for
# the MSI, Debian's wixl and msitools. The demo org is the one `make run` seeds; it is
# created here (plan pro) when the data dir has none.
#
# Optional: SIGN_CERT / SIGN_KEY (PEM) sign the .exe and .msi with osslsigncode.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOFLAGS=${GOFLAGS:--tags=nobadger,nobbolt,nomysql} CGO_ENABLED=${CGO_ENABLED:-0}
BIN=${BIN:-bin}
DATA_DIR=${DATA_DIR:-.lanyard}
OUT=${OUT:-dist/packages}
ORG=${ORG:-Demo Co}
# lanyard installers build turns a non-release version into 0.0.0-dev+<version>.
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

mkdir -p "$BIN"
go build -trimpath -o "$BIN/lanyard" ./cmd/lanyard
lanyard=("$BIN/lanyard" --data-dir "$DATA_DIR")

if ! "${lanyard[@]}" admin orgs | cut -f3- | grep -qxF "$ORG"; then
	"${lanyard[@]}" admin create-org "$ORG" --plan pro --owner-email "owner@packages.example" >/dev/null
	echo "created organization \"$ORG\" in $DATA_DIR"
fi

sign=()
if [ -n "${SIGN_CERT:-}" ]; then
	sign=(--sign-cert "$SIGN_CERT" --sign-key "${SIGN_KEY:?SIGN_KEY goes with SIGN_CERT}")
fi

for target in linux-deb/amd64 linux-deb/arm64 linux-rpm/amd64 linux-rpm/arm64 windows-msi/amd64 macos-pkg/universal; do
	"${lanyard[@]}" installers build --org "$ORG" --platform "${target%/*}" --arch "${target#*/}" \
		--agent-bin "$BIN" --version "$VERSION" --out "$OUT" "${sign[@]}"
done
echo
ls -l "$OUT"
