# Terrane — build, test, demo, bench.
#
# Modules are found by glob: worker/*.c make terrane-worker; controller/*.c
# (Terrane's logic), controller/kube/*.c (the Kubernetes client library) and
# controller/lib/*.c (errors, logs, allocation, maps, schema, HTTP) make
# terrane-controller; tests/unit/<side>/test_*.c each become one cmocka binary
# linked against that side's objects (minus main.o). BUILD selects the output
# directory, so sanitizer and fuzz builds never mix objects with the release one.

VERSION   := $(shell cat VERSION)
BUILD     ?= build
CC        ?= cc
PKGS_W    := gdal libcurl libcjson openssl
PKGS_C    := libcurl jansson openssl yaml-0.1 libwebsockets
OPT       ?= -O2 -g
CFLAGS_COMMON = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wno-missing-field-initializers $(OPT) -Iproto -DTERRANE_VERSION='"$(VERSION)"' $(EXTRA_CFLAGS)
W_CFLAGS   = $(CFLAGS_COMMON) -Iworker -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS_W))
W_LIBS     = $(shell pkg-config --libs $(PKGS_W)) -lm -lpthread
C_CFLAGS   = $(CFLAGS_COMMON) -Icontroller -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS_C) 2>/dev/null)
C_LIBS     = $(shell pkg-config --libs $(PKGS_C) 2>/dev/null) -lm -lpthread
LDFLAGS   ?=

W_SRC     := $(wildcard worker/*.c)
W_OBJ     := $(W_SRC:%.c=$(BUILD)/%.o)
W_LIBOBJ  := $(filter-out $(BUILD)/worker/main.o,$(W_OBJ))
C_DIRS    := controller controller/kube controller/lib
C_SRC     := $(foreach d,$(C_DIRS),$(wildcard $(d)/*.c))
C_HDR     := $(foreach d,$(C_DIRS),$(wildcard $(d)/*.h))
C_OBJ     := $(C_SRC:%.c=$(BUILD)/%.o)
C_LIBOBJ  := $(filter-out $(BUILD)/controller/main.o,$(C_OBJ))

UT_W_SRC  := $(wildcard tests/unit/worker/test_*.c)
UT_C_SRC  := $(wildcard tests/unit/controller/test_*.c)
UT_W_BIN  := $(UT_W_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UT_C_BIN  := $(UT_C_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BINS := $(BUILD)/terrane-worker
ifneq ($(wildcard controller/main.c),)
BINS += $(BUILD)/terrane-controller
endif

.PHONY: all deps unit test check-asan check-valgrind e2e-asan fuzz fuzz-short demo demo-stop demo-upload \
	bench bench-controller clean format format-check lint crd
all: $(BINS)

# The controller checks params against the same JSON Schema the worker is
# tested with, and `terrane-worker ops` prints the params from it; it is
# compiled in as a string so the images need no proto/.
GEN := $(BUILD)/gen/task_schema.inc $(BUILD)/gen/result_schema.inc
$(BUILD)/worker/%.o: worker/%.c $(wildcard worker/*.h) proto/terrane_proto.h $(GEN)
	@mkdir -p $(@D)
	$(CC) $(W_CFLAGS) -c $< -o $@
.SECONDARY: $(GEN)
$(BUILD)/gen/%_schema.inc: proto/schema/%.v1.json
	@mkdir -p $(@D)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@

# The lineage UI (controller/ui/): its JavaScript bundled with esbuild (npm,
# the layout and GeoTIFF libraries included), then compiled in as byte
# arrays, so the running controller needs neither Node nor the network.
# UI_PREBUILT=1 takes $(BUILD)/gen/ui_assets.inc as it is (the image build,
# which has no Node: scripts/images.sh makes the file first).
UI_SRC := $(wildcard controller/ui/*.js controller/ui/*.html controller/ui/*.css)
ESBUILD ?= node_modules/.bin/esbuild
ifneq ($(UI_PREBUILT),1)
$(BUILD)/gen/ui/app.js: $(UI_SRC) package-lock.json
	@mkdir -p $(@D)
	$(ESBUILD) controller/ui/main.js --bundle --minify --format=iife --target=es2020 \
	  --legal-comments=none --log-level=warning --outfile=$@
# the map preview (geotiff.js and its decoders) apart: loaded when first needed
$(BUILD)/gen/ui/preview.js: $(UI_SRC) package-lock.json
	@mkdir -p $(@D)
	$(ESBUILD) controller/ui/preview.js --bundle --minify --format=iife --target=es2020 \
	  --legal-comments=none --log-level=warning --outfile=$@
$(BUILD)/gen/ui_assets.inc: $(BUILD)/gen/ui/app.js $(BUILD)/gen/ui/preview.js controller/ui/index.html controller/ui/app.css
	@mkdir -p $(@D)
	{ xxd -i -n ui_index_html controller/ui/index.html; xxd -i -n ui_app_js $(BUILD)/gen/ui/app.js; \
	  xxd -i -n ui_preview_js $(BUILD)/gen/ui/preview.js; \
	  xxd -i -n ui_app_css controller/ui/app.css; } | sed 's/^unsigned/static const unsigned/' > $@.tmp
	mv $@.tmp $@
endif
.PHONY: ui
ui: $(BUILD)/gen/ui_assets.inc
.SECONDARY: $(BUILD)/gen/ui_assets.inc
$(BUILD)/controller/uiserver.o: $(BUILD)/gen/ui_assets.inc

$(BUILD)/controller/%.o: controller/%.c $(C_HDR) proto/terrane_proto.h $(GEN)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) -c $< -o $@

$(BUILD)/terrane-worker: $(W_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(W_LIBS)
$(BUILD)/terrane-controller: $(C_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(C_LIBS)

# One binary each, for the image build stages (Dockerfile.worker/.controller).
.PHONY: worker controller
worker: $(BUILD)/terrane-worker
controller: $(BUILD)/terrane-controller

$(BUILD)/tests/worker/%: tests/unit/worker/%.c $(wildcard tests/unit/worker/*.h) $(W_LIBOBJ)
	@mkdir -p $(@D)
	$(CC) $(W_CFLAGS) -Itests/unit -o $@ $< $(W_LIBOBJ) $(W_LIBS) -lcmocka
$(BUILD)/tests/controller/%: tests/unit/controller/%.c $(C_HDR) $(C_LIBOBJ)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) -Itests/unit -o $@ $< $(C_LIBOBJ) $(C_LIBS) -lcmocka

# --- set-up: Debian and npm packages, sample rasters (idempotent) -----------
deps:
	@scripts/deps.sh

# --- tests --------------------------------------------------------------------
# unit: cmocka binaries only. test: everything (deps, unit, fuzz smoke, proto,
# integration), ending with one summary line from tests/run.sh.
.PHONY: unit-bins
unit-bins: $(BINS) $(UT_W_BIN) $(UT_C_BIN)
unit: $(BINS) $(UT_W_BIN) $(UT_C_BIN)
	@tests/run.sh unit $(BUILD)

test: deps
	@$(MAKE) --no-print-directory all $(UT_W_BIN) $(UT_C_BIN)
	@$(MAKE) --no-print-directory BUILD=build-fuzz fuzz-bins
	@tests/run.sh all $(BUILD)

ASAN_MAKE = $(MAKE) --no-print-directory BUILD=build-asan CC=clang \
	  OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined"
check-asan:
	@$(ASAN_MAKE) unit

# The end-to-end controller suites with both binaries built with ASan+UBSan;
# any sanitizer report fails (scripts/e2e-sanitized.sh).
e2e-asan: deps
	@$(ASAN_MAKE) all $(UT_C_BIN)
	@scripts/e2e-sanitized.sh build-asan

# The unit tests (the release build's binaries) under Valgrind's memcheck;
# TERRANE_TEST_SLOWDOWN scales the deadlines of cases bound by one (TLS
# handshakes) by Valgrind's slowdown.
check-valgrind:
	@$(MAKE) --no-print-directory unit-bins
	@TERRANE_TEST_SLOWDOWN=20 TERRANE_UNIT_WRAPPER="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  --suppressions=$(CURDIR)/tests/valgrind.supp" tests/run.sh unit $(BUILD)

# --- fuzzing (libFuzzer) ------------------------------------------------------
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_FLAGS = -fsanitize=fuzzer,address,undefined -g -O1
$(BUILD)/fuzz/fuzz_w_%: tests/fuzz/fuzz_w_%.c $(W_LIBOBJ)
	@mkdir -p $(@D)
	$(CC) $(W_CFLAGS) $(FUZZ_FLAGS) -o $@ $< $(W_LIBOBJ) $(W_LIBS)
$(BUILD)/fuzz/fuzz_c_%: tests/fuzz/fuzz_c_%.c $(C_LIBOBJ)
	@mkdir -p $(@D)
	$(CC) $(C_CFLAGS) $(FUZZ_FLAGS) -o $@ $< $(C_LIBOBJ) $(C_LIBS)
fuzz-bins:
	@$(MAKE) --no-print-directory CC=clang OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	  $(FUZZ_BIN)
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz fuzz-bins
	@tests/fuzz/run.sh build-fuzz $${FUZZ_SECONDS:-300}

# Both images with buildah from a debootstrap base, then checks inside them.
.PHONY: images
images:
	@scripts/images.sh

# The whole system on one machine: kubesim, a local S3 server, the controller and
# the example asset graphs (scripts/demo.sh). It keeps running until demo-stop.
demo: deps all
	@scripts/demo.sh $(BUILD)

demo-stop:
	@scripts/demo-stop.sh

# Puts FILE into the running demo's S3 at s3://raw/KEY (KEY may start with
# raw/ or assets/, the buckets the demo's workers may read).
demo-upload:
	@scripts/demo-upload.sh "$(FILE)" "$(KEY)"

# The CRD's params schema and CEL rules come from proto/schema/task.v1.json
# (scripts/gen-crd.py); tests/install/test_crd_params.sh fails when the
# committed CRDs differ from what this writes.
crd:
	@scripts/gen-crd.py

bench: deps all
	@bench/run.sh $(BUILD)

# The controller at scale against kubesim (bench/README.md); BENCH_CONTROLLER_ARGS
# chooses other sizes, e.g. "--n 1000,10000,100000"; BENCH_FAULTS=0 skips the
# faults-at-scale run (1,000 assets, ten kills).
bench-controller: deps all
	@bench/bench_controller.py $(BUILD) $(BENCH_CONTROLLER_ARGS)
	@if [ "$${BENCH_FAULTS:-1}" != 0 ]; then \
	  SCALE_ASSETS=1000 SCALE_KILLS=10 SCALE_TIMEOUT=3600 TERRANE_BUILD=$(abspath $(BUILD)) \
	    tests/e2e/test_controller_scale_faults.sh | grep -E '^(ok|FAIL|converged|audit|killed)'; fi


FORMAT_SRC = $(wildcard worker/*.[ch]) $(C_SRC) $(C_HDR) $(wildcard tests/unit/*/*.[ch]) $(wildcard tests/fuzz/*.c)
format:
	clang-format -i $(FORMAT_SRC)
# Fails, naming the lines, where a file differs from what clang-format makes of it.
format-check:
	@clang-format --dry-run -Werror $(FORMAT_SRC)

# cppcheck and clang-tidy (.clang-tidy) on worker/ and controller/.
lint: $(GEN) $(BUILD)/gen/ui_assets.inc
	@scripts/lint.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz build-*
