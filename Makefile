# forkvm — one top-level Makefile.  `make test`, `make demo`, `make bench`.
#   OUT=dir   build directory (default build)
#   V=1       show commands
#   WERROR=0  do not stop on warnings
#   SAN=1     build the host code with ASan + UBSan
OUT ?= build
V ?= 0
WERROR ?= 1
SAN ?= 0

.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:

Q := $(if $(filter 1,$(V)),,@)
say = $(if $(filter 1,$(V)),,@printf '  %-7s %s\n' $(1) $(2);)

CC := gcc
AR := ar
CFLAGS := -std=gnu11 -O2 -g -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter \
	  -MMD -MP -pthread -I. $(if $(filter 1,$(WERROR)),-Werror)
LDFLAGS := -pthread
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
LIBFDT := -lfdt
CRITERION := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

# The Debian packages the build needs; scripts/deps.sh installs what is missing.
DEPS_STAMP := $(OUT)/.deps-ok
$(DEPS_STAMP): scripts/deps.sh
	$(Q)mkdir -p $(@D)
	$(Q)scripts/deps.sh
	$(Q)touch $@

# ---- host code: mm <- devices <- vmm --------------------------------------
MM_SRCS := $(wildcard mm/*.c)
DEV_SRCS := $(wildcard devices/*.c devices/virtio/*.c)
VMM_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c))
HELPER_SRCS := $(wildcard tests/helpers/*.c)

obj = $(patsubst %.c,$(OUT)/obj/%.o,$(1))

LIBMM := $(OUT)/libmm.a
LIBDEV := $(OUT)/libdevices.a
LIBVMM := $(OUT)/libvmm.a
LIBHELPERS := $(OUT)/libtesthelpers.a
FORKVM := $(OUT)/forkvm

$(OUT)/obj/%.o: %.c | $(DEPS_STAMP)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIBMM): $(call obj,$(MM_SRCS))
$(LIBDEV): $(call obj,$(DEV_SRCS))
$(LIBVMM): $(call obj,$(VMM_SRCS))
$(LIBHELPERS): $(call obj,$(HELPER_SRCS))
$(LIBMM) $(LIBDEV) $(LIBVMM) $(LIBHELPERS):
	$(call say,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

HOST_LIBS := $(LIBVMM) $(LIBDEV) $(LIBMM)

$(FORKVM): $(call obj,vmm/main.c) $(HOST_LIBS)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBFDT)

# ---- tests and benches: one program per file --------------------------------
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
BENCH_SRCS := $(wildcard bench/*.c)
UNIT_BINS := $(patsubst %.c,$(OUT)/%,$(UNIT_SRCS))
INTEG_BINS := $(patsubst %.c,$(OUT)/%,$(INTEG_SRCS))
BENCH_BINS := $(patsubst %.c,$(OUT)/%,$(BENCH_SRCS))

$(OUT)/tests/%: $(OUT)/obj/tests/%.o $(LIBHELPERS) $(HOST_LIBS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBFDT) $(CRITERION)

$(OUT)/bench/%: $(OUT)/obj/bench/%.o $(HOST_LIBS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBFDT)

# ---- the freestanding test guest (its own flags; never linked into the VMM) --
-include guest/test/guest.mk

.PHONY: all test test-unit test-integration test-nested demo bench fmt fmt-check clean deps
all: $(FORKVM) $(UNIT_BINS) $(INTEG_BINS) $(BENCH_BINS) $(GUEST_ELF)

deps: $(DEPS_STAMP)

test: all
	$(Q)scripts/run-tests.sh $(OUT) all

test-unit: all
	$(Q)scripts/run-tests.sh $(OUT) unit

test-integration: all
	$(Q)scripts/run-tests.sh $(OUT) integration

# Forces the nested QEMU path even where /dev/kvm works, to keep both green.
test-nested: all
	$(Q)FORKVM_KVM=nested scripts/run-tests.sh $(OUT) integration

demo: all
	$(Q)scripts/demo.sh $(OUT)

bench: all
	$(Q)scripts/run-bench.sh $(OUT)

FMT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
fmt:
	$(Q)clang-format -i $(FMT_SRCS)
fmt-check: | $(DEPS_STAMP)
	$(Q)clang-format --dry-run --Werror $(FMT_SRCS) && echo "fmt-check: clean"

clean:
	rm -rf $(OUT)

-include $(shell find $(OUT)/obj -name '*.d' 2>/dev/null)
