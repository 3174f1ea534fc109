# The Linux guest (included by the top-level Makefile): Debian's stock kernel
# and an initramfs built from Debian packages (docs/linux-guest.md).
#   $(LINUX_KERNEL)  the bzImage, fetched once with apt-get download
#   $(LINUX_INITRD)  busybox-static + guest/linux/init + forkvm-fork + the
#                    kernel's virtio modules, as a newc cpio
# Package-provided values come from the scripts at recipe time, never from
# $(shell ...) at parse time (README, "Changing the build").
LINUX_DIR := $(OUT)/linux
LINUX_KERNEL := $(LINUX_DIR)/vmlinuz
LINUX_INITRD := $(LINUX_DIR)/initrd.cpio
LINUX_FORK := $(LINUX_DIR)/forkvm-fork

# Host gcc, static glibc: the guest runs it under the stock kernel.
$(LINUX_FORK): guest/linux/fork.c guest/abi.h | $(CONFIG_MK)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -std=gnu11 -O2 -static -Wall -Wextra -I. $(if $(filter 1,$(WERROR)),-Werror) \
		-o $@ $<

$(LINUX_KERNEL): guest/linux/fetch-kernel.sh | $(CONFIG_MK)
	$(call say,FETCH,$@)
	$(Q)guest/linux/fetch-kernel.sh $(LINUX_DIR)

$(LINUX_INITRD): guest/linux/init guest/linux/mkinitrd.sh $(LINUX_FORK) $(LINUX_KERNEL)
	$(call say,CPIO,$@)
	$(Q)guest/linux/mkinitrd.sh $(LINUX_DIR) $@

.PHONY: linux-guest
linux-guest: $(LINUX_KERNEL) $(LINUX_INITRD)
all: linux-guest
