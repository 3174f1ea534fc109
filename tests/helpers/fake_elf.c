// SPDX-License-Identifier: MIT
#include <elf.h>
#include <string.h>

#include "tests/helpers/fake_elf.h"

size_t fake_elf_build(uint8_t *buf)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph[2] = { { 0 } };

	memset(buf, 0, FAKE_ELF_SIZE);
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = FAKE_ELF_CODE_GPA;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(ph[0]);
	eh.e_phnum = 2;
	ph[0] = (Elf64_Phdr){
		.p_type = PT_LOAD,
		.p_flags = PF_R | PF_X,
		.p_offset = FAKE_ELF_CODE_OFF,
		.p_vaddr = FAKE_ELF_CODE_GPA,
		.p_paddr = FAKE_ELF_CODE_GPA,
		.p_filesz = 0x100,
		.p_memsz = 0x100,
		.p_align = 0x1000,
	};
	ph[1] = (Elf64_Phdr){
		.p_type = PT_LOAD,
		.p_flags = PF_R | PF_W,
		.p_offset = FAKE_ELF_DATA_OFF,
		.p_vaddr = FAKE_ELF_DATA_GPA,
		.p_paddr = FAKE_ELF_DATA_GPA,
		.p_filesz = 0x100,
		.p_memsz = 0x3000,
		.p_align = 0x1000,
	};
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + sizeof(eh), ph, sizeof(ph));
	memset(buf + FAKE_ELF_CODE_OFF, 0xf4, 0x100);
	memset(buf + FAKE_ELF_DATA_OFF, 0x5a, 0x100);
	return FAKE_ELF_SIZE;
}
