// SPDX-License-Identifier: MIT
/* The guest ELF loader: check every field before trusting it. */
#include "vmm/elf.h"

#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/layout.h"

#define ELF_MAX_PHDRS 64
#define ELF_MAX_FILE (1ULL << 30)

static int bad(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "guest ELF: %s", what);
	return -ENOEXEC;
}

/*
 * The file's bytes may sit at any alignment (e_phoff is a file value): the
 * headers are copied out with memcpy, never dereferenced in place.
 */
static void get_phdr(const void *data, const Elf64_Ehdr *eh, unsigned int i, Elf64_Phdr *ph)
{
	memcpy(ph, (const char *)data + eh->e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

/* A PT_LOAD segment elf_load() will act on: it occupies memory or file bytes. */
static bool is_loaded(const Elf64_Phdr *ph)
{
	return ph->p_type == PT_LOAD && (ph->p_memsz || ph->p_filesz);
}

static int check_header(const void *data, size_t size, Elf64_Ehdr *eh, char *err, size_t errlen)
{
	uint64_t tbl_size, tbl_end;

	if (size < sizeof(*eh))
		return bad(err, errlen, "shorter than an ELF header");
	memcpy(eh, data, sizeof(*eh));
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return bad(err, errlen, "not an ELF file (bad magic)");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return bad(err, errlen, "not ELF64");
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return bad(err, errlen, "not little-endian");
	if (eh->e_machine != EM_X86_64)
		return bad(err, errlen, "not x86-64");
	if (eh->e_type != ET_EXEC)
		return bad(err, errlen, "not an executable (ET_EXEC)");
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return bad(err, errlen, "unexpected program header size");
	if (eh->e_phnum == 0 || eh->e_phnum > ELF_MAX_PHDRS)
		return bad(err, errlen, "no program headers, or too many");
	tbl_size = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if (__builtin_add_overflow(eh->e_phoff, tbl_size, &tbl_end) || tbl_end > size)
		return bad(err, errlen, "program headers outside the file");
	return 0;
}

static int check_segment(const Elf64_Phdr *ph, size_t size, uint64_t mem_size, char *err,
			 size_t errlen)
{
	uint64_t file_end, mem_end;

	if (__builtin_add_overflow(ph->p_offset, ph->p_filesz, &file_end) || file_end > size)
		return bad(err, errlen, "a PT_LOAD segment's bytes lie outside the file");
	if (ph->p_filesz > ph->p_memsz)
		return bad(err, errlen, "a PT_LOAD segment has p_filesz > p_memsz");
	if (ph->p_paddr != ph->p_vaddr)
		return bad(err, errlen,
			   "a PT_LOAD segment has p_paddr != p_vaddr (identity-mapped guest)");
	if (ph->p_paddr < LAYOUT_IMAGE_MIN)
		return bad(err, errlen,
			   "a PT_LOAD segment lies below 1 MiB (the VMM's tables and FDT)");
	if (__builtin_add_overflow(ph->p_paddr, ph->p_memsz, &mem_end) || mem_end > mem_size)
		return bad(err, errlen, "a PT_LOAD segment ends beyond guest RAM (raise --mem?)");
	return 0;
}

int elf_check(const void *data, size_t size, uint64_t mem_size, struct elf_image *img, char *err,
	      size_t errlen)
{
	Elf64_Phdr ph[ELF_MAX_PHDRS];
	Elf64_Ehdr eh;
	bool entry_ok = false;
	unsigned int i, j, nload = 0;
	uint64_t end = 0;
	int ret;

	ret = check_header(data, size, &eh, err, errlen);
	if (ret)
		return ret;
	for (i = 0; i < eh.e_phnum; i++) {
		get_phdr(data, &eh, i, &ph[i]);
		/* File values: every segment elf_load() copies is checked, even
		 * one with p_memsz 0 (its p_filesz > p_memsz refuses it). */
		if (!is_loaded(&ph[i]))
			continue;
		ret = check_segment(&ph[i], size, mem_size, err, errlen);
		if (ret)
			return ret;
		for (j = 0; j < i; j++) {
			/* Both were checked above, so the ends do not overflow. */
			if (!is_loaded(&ph[j]))
				continue;
			if (ph[i].p_paddr < ph[j].p_paddr + ph[j].p_memsz &&
			    ph[j].p_paddr < ph[i].p_paddr + ph[i].p_memsz)
				return bad(err, errlen, "two PT_LOAD segments overlap");
		}
		if ((ph[i].p_flags & PF_X) && eh.e_entry >= ph[i].p_paddr &&
		    eh.e_entry - ph[i].p_paddr < ph[i].p_memsz)
			entry_ok = true;
		if (ph[i].p_paddr + ph[i].p_memsz > end)
			end = ph[i].p_paddr + ph[i].p_memsz;
		nload++;
	}
	if (!nload)
		return bad(err, errlen, "no PT_LOAD segment");
	if (!entry_ok)
		return bad(err, errlen,
			   "the entry point is not inside an executable PT_LOAD segment");
	img->entry = eh.e_entry;
	/* end <= mem_size <= 3 GiB, so rounding up cannot overflow. */
	img->end = (end + MM_PAGE_SIZE - 1) & ~(MM_PAGE_SIZE - 1);
	return 0;
}

int elf_load(struct space *space, const void *data, size_t size, struct elf_image *img, char *err,
	     size_t errlen)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	unsigned int i;
	int ret;

	ret = elf_check(data, size, space_size(space), img, err, errlen);
	if (ret)
		return ret;
	memcpy(&eh, data, sizeof(eh));
	for (i = 0; i < eh.e_phnum; i++) {
		get_phdr(data, &eh, i, &ph);
		/* elf_check() checked every segment is_loaded() selects. */
		if (!is_loaded(&ph) || !ph.p_filesz)
			continue;
		/* The rest up to p_memsz stays zero: a new space reads as zero. */
		ret = space_write(space, ph.p_paddr, (const char *)data + ph.p_offset, ph.p_filesz);
		if (ret) {
			snprintf(err, errlen, "guest ELF: writing a segment at 0x%llx: %s",
				 (unsigned long long)ph.p_paddr, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int elf_load_file(struct space *space, const char *path, struct elf_image *img, char *err,
		  size_t errlen)
{
	struct stat st;
	void *data;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "guest ELF %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > ELF_MAX_FILE) {
		snprintf(err, errlen, "guest ELF %s: not a regular file of 1 byte to 1 GiB", path);
		close(fd);
		return -EINVAL;
	}
	data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (data == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "guest ELF %s: mmap: %s", path, strerror(errno));
		return ret;
	}
	ret = elf_load(space, data, (size_t)st.st_size, img, err, errlen);
	munmap(data, (size_t)st.st_size);
	if (ret) {
		char why[256];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "%s (%s)", why, path);
	}
	return ret;
}
