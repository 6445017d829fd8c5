# tbox: the CSOP mileage agent for vehicle T-Boxes.
#
# Knobs: TESTFLAGS (extra go test flags), ENABLE_RACE=1, BENCHTIME, VERSION,
# GOTAGS (build tags of the binaries: "tpm" adds the TPM-sealed device key,
# about 450 KiB on tboxd; the packages are built with it).

SHELL     := /bin/bash
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Build time for the CLOCK flag ("the wall clock reads earlier than the build"):
# the commit time, so that builds are reproducible.
BUILDTIME ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.buildTime=$(BUILDTIME)
GOTAGS    ?=
GOFLAGS_BUILD = -trimpath -tags "$(GOTAGS)" -ldflags "$(LDFLAGS)"
# Tests build everything, the TPM backend included.
TESTTAGS  := -tags tpm
CMDS      := tboxd tboxctl collector vsim
TESTFLAGS ?=
BENCHTIME ?= 1s
ifeq ($(ENABLE_RACE),1)
TESTFLAGS += -race
endif

.PHONY: all build arm arm64 package test unit hil bench soak demo deps fmt vet lint fuzz clean

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/ $(addprefix ./cmd/,$(CMDS))

arm:
	@mkdir -p bin/linux-arm
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(GOFLAGS_BUILD) -o bin/linux-arm/ $(addprefix ./cmd/,$(CMDS))

arm64:
	@mkdir -p bin/linux-arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_BUILD) -o bin/linux-arm64/ $(addprefix ./cmd/,$(CMDS))

# package builds the tboxd packages under bin/: .deb for armhf and arm64,
# .ipk (opkg) for the same. nfpm is a Go tool of cmd/tboxd/deploy/tools/go.mod, so that its
# ~170 modules stay out of the agent's module graph (go tool builds it from
# the module cache, no download of binaries). PKG_VERSION must start with
# a digit (deb): a tag such as v1.2.3 gives 1.2.3, a bare commit 0.0.0+g<hash>.
PKG_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v//; /^[0-9]+\./!s/^/0.0.0+g/')
NFPM      := $(GO) tool -modfile=cmd/tboxd/deploy/tools/go.mod nfpm
package: GOTAGS = tpm
package: arm arm64
	@for spec in armhf:linux-arm arm64:linux-arm64; do \
	  arch=$${spec%%:*}; rm -rf bin/.pkg; mkdir -p bin/.pkg; \
	  cp bin/$${spec#*:}/tboxd bin/$${spec#*:}/tboxctl bin/.pkg/ || exit 1; \
	  for fmt in deb ipk; do \
	    NFPM_ARCH=$$arch PKG_VERSION='$(PKG_VERSION)' \
	      $(NFPM) package --config cmd/tboxd/deploy/nfpm.yaml --packager $$fmt --target bin/ || exit 1; \
	  done; \
	done; rm -rf bin/.pkg

# deps installs what the tests need on a fresh Debian machine (qemu, the armhf
# guest kernel and busybox, mosquitto, socat, can-utils). Idempotent.
deps:
	bash hil/scripts/install.sh

fmt:
	gofmt -l -w $$(git ls-files '*.go')

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet $(TESTTAGS) ./...

lint: vet

# test runs every test: unit, fuzz seeds, the real mosquitto and pty tests,
# then the emulated ARM T-Box (HIL) suite on its own, so that its timing is
# not measured on a machine busy with the other packages.
test: deps vet
	$(GO) test -count=1 -timeout 30m $(TESTTAGS) $(TESTFLAGS) $$($(GO) list ./... | grep -v -e '/hil$$' -e '/hil/demo$$' -e '/hil/rig$$')
	$(GO) test -count=1 -timeout 40m -v $(TESTTAGS) $(TESTFLAGS) ./hil/
	$(GO) test -count=1 -timeout 20m -v $(TESTTAGS) $(TESTFLAGS) ./hil/rig/
	$(GO) test -count=1 -timeout 10m -v $(TESTTAGS) $(TESTFLAGS) ./hil/demo/

# unit runs everything but the emulated T-Box.
unit: vet
	$(GO) test -count=1 -timeout 30m $(TESTTAGS) $(TESTFLAGS) $$($(GO) list ./... | grep -v -e '/hil$$' -e '/hil/demo$$' -e '/hil/rig$$')

hil: deps
	$(GO) test -count=1 -timeout 40m -v $(TESTTAGS) $(TESTFLAGS) ./hil/
	$(GO) test -count=1 -timeout 20m -v $(TESTTAGS) $(TESTFLAGS) ./hil/rig/
	$(GO) test -count=1 -timeout 10m -v $(TESTTAGS) $(TESTFLAGS) ./hil/demo/

# fuzz runs each fuzz target briefly (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) run ./hil/benchtable -benchtime $(BENCHTIME)

# soak: the collector on PostgreSQL behind mosquitto at 10x the 1 M-car rate
# for 10 minutes (knobs: SOAK_RATE, SOAK_DURATION, SOAK_DEVICES, SOAK_WINDOW); needs
# postgresql and mosquitto (install.sh). Not part of test.
soak:
	$(GO) test -count=1 -timeout 30m -v -tags soak -run '^TestSoak$$' ./cmd/collector/internal/fleettest/

# demo: a simulated drive on vcan0 in the emulated ARM T-Box, tboxd attesting
# and uploading to a mosquitto on the host, the collector verifying, acking
# and drawing; ends with a summary table. About a minute once installed.
demo: deps
	$(GO) run ./hil/demo

clean:
	rm -rf bin
