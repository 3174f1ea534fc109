# The freestanding test guest (included by the top-level Makefile).
# Its own flags: no libc, no red zone, no PIC, linked at 1 MiB; libfdt.a from
# Debian's libfdt-dev is linked in (see docs/test-guest.md for its stack
# protector): $(GUEST_LIBFDT), which scripts/configure.sh finds after the
# package is installed.  Objects go under $(OUT)/guest/.
GUEST_DIR := guest/test
GUEST_ELF := $(OUT)/guest/test.elf
GUEST_SRCS := $(wildcard $(GUEST_DIR)/*.c) $(GUEST_DIR)/crt0.S
GUEST_OBJS := $(patsubst $(GUEST_DIR)/%,$(OUT)/guest/%.o,$(GUEST_SRCS))

# -mcmodel=small: everything sits below 2 GiB.  SSE is allowed (CR4.OSFXSR is
# set at entry) but nothing newer: -mno-avx keeps VEX encodings out.
# -fno-tree-loop-distribute-patterns keeps gcc from turning the mem* loops
# of libc.c into calls to themselves.
GUEST_CFLAGS := -std=gnu11 -O2 -g -I. -ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie \
	-mno-red-zone -mcmodel=small -mno-avx -mno-avx2 -fno-stack-protector \
	-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns \
	-fno-omit-frame-pointer -Wall -Wextra -Wshadow -MMD -MP \
	$(if $(filter 1,$(WERROR)),-Werror)
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,$(GUEST_DIR)/linker.ld \
	-Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments

$(OUT)/guest/%.c.o: $(GUEST_DIR)/%.c | $(CONFIG_MK)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(OUT)/guest/%.S.o: $(GUEST_DIR)/%.S | $(CONFIG_MK)
	$(call say,AS,$<)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(GUEST_CFLAGS) -D__ASSEMBLER__ -c $< -o $@

$(GUEST_ELF): $(GUEST_OBJS) $(GUEST_DIR)/linker.ld
	$(call say,LD,$@)
	$(Q)$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS) $(GUEST_LIBFDT) -lgcc

.PHONY: guest
guest: $(GUEST_ELF)

-include $(wildcard $(OUT)/guest/*.d)

# hostrun: runs the guest as a Linux process (no KVM) with emulated ports and
# a model virtio-blk device; a host tool for testing the guest, see
# docs/test-guest.md.  `make guest-hostrun`, then
# $(OUT)/guest/hostrun $(GUEST_ELF) WORKLOAD [options].
GUEST_HOSTRUN := $(OUT)/guest/hostrun

$(GUEST_HOSTRUN): $(GUEST_DIR)/hostrun/hostrun.c $(wildcard $(GUEST_DIR)/*.h) | $(CONFIG_MK)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIBFDT)

.PHONY: guest-hostrun
guest-hostrun: $(GUEST_HOSTRUN) $(GUEST_ELF)

# The dmastress unit test runs hostrun and the guest from the same $(OUT).
$(OUT)/tests/unit/test_guest_dmastress: | $(GUEST_HOSTRUN) $(GUEST_ELF)
