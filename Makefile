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
# ---- configuration: every value that comes from an installed package -------
# scripts/configure.sh first installs the missing Debian packages
# (scripts/deps.sh), then writes LIBFDT, CRITERION, LIBURING, LIBAPI, LIBSECCOMP
# and GUEST_LIBFDT
# into $(CONFIG_MK).  Make includes it; when it had to (re)make it, make
# restarts and reads it again, so nothing that a package provides is read
# before the package is there.  Never assign such a value with $(shell ...)
# here: on a fresh machine it would run before the install.
CONFIG_MK := $(OUT)/config.mk
ifneq ($(filter-out clean,$(or $(MAKECMDGOALS),all)),)
include $(CONFIG_MK)
endif
$(CONFIG_MK): scripts/configure.sh scripts/deps.sh
	$(Q)mkdir -p $(@D)
	$(Q)scripts/configure.sh $(CC) > $@.tmp
	$(Q)mv $@.tmp $@

# ---- host code: mm <- devices <- vmm --------------------------------------
MM_SRCS := $(wildcard mm/*.c)
DEV_SRCS := $(wildcard devices/*.c devices/virtio/*.c)
VMM_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c vmm/*/*.c))
HELPER_SRCS := $(wildcard tests/helpers/*.c)

obj = $(patsubst %.c,$(OUT)/obj/%.o,$(1))

LIBMM := $(OUT)/libmm.a
LIBDEV := $(OUT)/libdevices.a
LIBVMM := $(OUT)/libvmm.a
LIBHELPERS := $(OUT)/libtesthelpers.a
FORKVM := $(OUT)/forkvm

$(OUT)/obj/%.o: %.c | $(CONFIG_MK)
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
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBFDT) $(LIBURING) $(LIBAPI) $(LIBSECCOMP)

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
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBFDT) $(LIBURING) $(LIBAPI) $(LIBSECCOMP) $(CRITERION)

$(OUT)/bench/%: $(OUT)/obj/bench/%.o $(HOST_LIBS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBFDT) $(LIBURING) $(LIBAPI) $(LIBSECCOMP)

# ---- the freestanding test guest (its own flags; never linked into the VMM) --
-include guest/test/guest.mk
# ---- the Linux guest: Debian kernel + initramfs (guest/linux/linux.mk) ------
-include guest/linux/linux.mk

.PHONY: all test test-unit test-integration test-nested demo policy-matrix bench fmt fmt-check clean deps
all: $(FORKVM) $(UNIT_BINS) $(INTEG_BINS) $(BENCH_BINS) $(GUEST_ELF)

deps: $(CONFIG_MK)

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

# The DMA-safety policy matrix alone (make demo's part 4): pagecount must lose
# no device write, the legacy nopin and mapcount must lose some.
policy-matrix: all
	$(Q)FORKVM_DEMO_ONLY=matrix scripts/demo.sh $(OUT)

bench: all
	$(Q)scripts/run-bench.sh $(OUT)

# The snapshot fuzzer's long run (make test runs a few seconds of it);
# FUZZ_ITERS mutations of the manifest, a fiftieth of them of the memory file.
FUZZ_ITERS ?= 2000000
.PHONY: fuzz
fuzz: all
	$(Q)FORKVM_FUZZ_ITERS=$(FUZZ_ITERS) $(OUT)/tests/unit/test_snapshot --jobs 2 \
		--filter 'snapshot/fuzz_*'

FMT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
fmt:
	$(Q)clang-format -i $(FMT_SRCS)
fmt-check: | $(CONFIG_MK)
	$(Q)clang-format --dry-run --Werror $(FMT_SRCS) && echo "fmt-check: clean"

clean:
	rm -rf $(OUT)

-include $(shell find $(OUT)/obj -name '*.d' 2>/dev/null)
