// SPDX-License-Identifier: MIT
/*
 * The memory manager's mechanism under KVM: a space's window is a KVM memslot,
 * the guest writes pages that mm has write-protected (after space_fork() or
 * space_ref_page()), the fault service copies or reuses the frame while the
 * vCPU waits inside KVM_RUN, and the guest's write lands in the right frame.
 * Guest code runs at CPL 3 (fast on kvm_pvm too); no vmm/ code.
 */
#include <criterion/criterion.h>
#include <inttypes.h>

#include "mm/mm.h"
#include "tests/helpers/mini_kvm.h"

#define SPACE_SIZE (4ULL << 20)
#define SPACE_SLOT 1
#define NPAGES 8
#define FIRST_GPA 0x10000ULL /* pages FIRST_GPA + i * 4 KiB */
#define OFF 8 /* the guest writes the qword at this page offset */
#define VALUE 0x1122334455667788ULL
#define PORT_DONE 0x1236

static struct pool *pool;
static struct space *space;
static struct mkvm vm;

static void init_with(const struct pool_config *cfg)
{
	int ret = mkvm_open(&vm);

	if (ret == -ENOENT || ret == -ENXIO || ret == -ENODEV)
		cr_skip_test("no /dev/kvm here (%s); run through scripts/in-kvm", strerror(-ret));
	cr_assert_eq(ret, 0, "mkvm_open: %s", strerror(-ret));
	ret = pool_create(cfg, &pool);
	if (ret == -ENOSYS)
		cr_skip_test(
		    "this kernel lacks userfaultfd write-protect on shmem (needs >= 5.19)");
	cr_assert_eq(ret, 0, "pool_create: %s", strerror(-ret));
	ret = space_create(pool, &(struct space_range){ 0, SPACE_SIZE }, 1, &space);
	cr_assert_eq(ret, 0, "space_create: %s", strerror(-ret));
	ret = mkvm_set_slot(&vm, SPACE_SLOT, 0, space_hva(space, 0), SPACE_SIZE);
	cr_assert_eq(ret, 0, "memslot over the space's window: %s", strerror(-ret));
}

static void init(void)
{
	init_with(NULL);
}

/* Linux 6.1's userfaultfd only (the nested guest's kernel), even on a newer one. */
static void init_compat(void)
{
	init_with(&(struct pool_config){ .uffd_compat = true });
}

static void fini(void)
{
	/* The VM first: its memslot points into the window. */
	mkvm_close(&vm);
	space_destroy(space);
	pool_destroy(pool);
	space = NULL;
	pool = NULL;
}

static uint64_t page_gpa(unsigned int i)
{
	return FIRST_GPA + (uint64_t)i * MM_PAGE_SIZE;
}

static uint8_t pattern(unsigned int i)
{
	return (uint8_t)(0xa0 + i);
}

/* Fill page i with its pattern through the window (a host CPU write). */
static void fill_pages(struct space *s)
{
	unsigned int i;

	for (i = 0; i < NPAGES; i++)
		memset(space_hva(s, page_gpa(i)), pattern(i), MM_PAGE_SIZE);
}

/* Run the guest at CPL 3: VALUE into the qword at OFF of each page. */
static void guest_writes_pages(struct mkvm *m, unsigned int n)
{
	char why[128];
	int ret;

	mkvm_program_write_pages(mkvm_boot_ptr(m, MKVM_CODE), page_gpa(0) + OFF, MM_PAGE_SIZE, n,
				 VALUE, PORT_DONE);
	ret = mkvm_enter_long_mode(m, 3, MKVM_BOOT_GPA + MKVM_CODE);
	cr_assert_eq(ret, 0, "entering long mode: %s", strerror(-ret));
	ret = mkvm_run(m);
	cr_assert(ret == KVM_EXIT_IO && m->run->io.port == PORT_DONE,
		  "expected the guest's done port, got %s (port 0x%x)",
		  mkvm_describe_exit(m, ret, why, sizeof(why)), m->run->io.port);
	cr_assert_eq(mkvm_io_value(m), n, "guest reports %" PRIu64 " stores, expected %u",
		     mkvm_io_value(m), n);
}

static uint64_t qword_at(const void *page, size_t off)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)page + off, sizeof(v));
	return v;
}

/* @page holds pattern @p everywhere, or everywhere but VALUE at OFF. */
static void assert_page(const void *page, uint8_t p, bool written, const char *what, unsigned int i)
{
	const uint8_t *b = page;
	uint64_t want = written ? VALUE : 0x0101010101010101ULL * p;
	size_t k;

	cr_assert_eq(qword_at(page, OFF), want,
		     "%s page %u: qword 0x%" PRIx64 ", expected 0x%" PRIx64, what, i,
		     qword_at(page, OFF), want);
	for (k = 0; k < MM_PAGE_SIZE; k++) {
		if (k >= OFF && k < OFF + 8)
			continue;
		cr_assert_eq(b[k], p, "%s page %u: byte %zu is 0x%02x, expected 0x%02x", what, i, k,
			     b[k], p);
	}
}

/* Fill every page, note each one's frame in @before, fork: the child. */
static struct space *fill_and_fork(uint64_t before[NPAGES])
{
	struct space *child;
	unsigned int i;
	int ret;

	fill_pages(space);
	for (i = 0; i < NPAGES; i++) {
		before[i] = space_frame_of(space, page_gpa(i));
		cr_assert_neq(before[i], MM_NO_FRAME, "page %u has no frame after a host write", i);
	}
	ret = space_fork(space, &child);
	cr_assert_eq(ret, 0, "space_fork: %s", strerror(-ret));
	return child;
}

static void fork_then_guest_writes(void)
{
	uint64_t before[NPAGES];
	struct pool_stats st0, st1;
	struct space *child;
	unsigned int i;

	child = fill_and_fork(before);
	for (i = 0; i < NPAGES; i++)
		cr_assert_eq(space_frame_of(child, page_gpa(i)), before[i],
			     "page %u: the child does not share the parent's frame", i);
	pool_get_stats(pool, &st0);

	guest_writes_pages(&vm, NPAGES);

	pool_get_stats(pool, &st1);
	for (i = 0; i < NPAGES; i++) {
		uint64_t now = space_frame_of(space, page_gpa(i));

		cr_assert_neq(now, before[i], "page %u: the guest wrote a shared frame in place",
			      i);
		cr_assert_neq(now, MM_NO_FRAME);
		assert_page(space_hva(space, page_gpa(i)), pattern(i), true, "parent window", i);
		assert_page(pool_frame_ptr(pool, now), pattern(i), true, "parent's new frame", i);
		assert_page(space_hva(child, page_gpa(i)), pattern(i), false, "child window", i);
		assert_page(pool_frame_ptr(pool, before[i]), pattern(i), false, "old frame", i);
		cr_assert_eq(space_frame_of(child, page_gpa(i)), before[i],
			     "page %u: the child lost its frame", i);
	}
	cr_assert_geq(st1.copies - st0.copies, NPAGES, "copies went from %" PRIu64 " to %" PRIu64,
		      st0.copies, st1.copies);
	space_destroy(child);
}

Test(kvm_wp, guest_write_after_fork_lands_in_a_new_frame_and_child_keeps_old, .init = init,
     .fini = fini, .timeout = 120)
{
	fork_then_guest_writes();
}

Test(kvm_wp, guest_write_after_fork_on_the_linux_6_1_uffd_path, .init = init_compat, .fini = fini,
     .timeout = 120)
{
	fork_then_guest_writes();
}

Test(kvm_wp, guest_write_after_ref_page_copies_and_reader_view_is_intact, .init = init,
     .fini = fini, .timeout = 120)
{
	uint64_t ref, now;
	int ret;

	fill_pages(space);
	ret = space_ref_page(space, page_gpa(0), &ref);
	cr_assert_eq(ret, 0, "space_ref_page: %s", strerror(-ret));
	cr_assert_eq(ref, space_frame_of(space, page_gpa(0)));

	guest_writes_pages(&vm, 1);

	now = space_frame_of(space, page_gpa(0));
	cr_assert_neq(now, ref, "the guest wrote the referenced frame in place");
	assert_page(space_hva(space, page_gpa(0)), pattern(0), true, "parent window", 0);
	assert_page(pool_frame_ptr(pool, ref), pattern(0), false, "reader's frame", 0);
	pool_frame_put(pool, ref);
}

/*
 * Issue 9: a page written, write-pinned (a device read in flight), then
 * referenced by a snapshot reader.  The guest's write must stay on the
 * pinned frame, so that the device's completion is what the guest reads;
 * the reader gets a copy.
 */
static void guest_write_to_a_pinned_referenced_page(void)
{
	struct mm_pin pin;
	uint64_t ref, f;
	uint8_t *hva;
	int ret;

	fill_pages(space);
	ret = space_pin(space, page_gpa(0), MM_PAGE_SIZE, MM_PIN_WRITE, &pin);
	cr_assert_eq(ret, 0, "space_pin: %s", strerror(-ret));
	f = pin.frames[0];
	ret = space_ref_page(space, page_gpa(0), &ref);
	cr_assert_eq(ret, 0, "space_ref_page: %s", strerror(-ret));

	guest_writes_pages(&vm, 1);

	cr_assert_eq(space_frame_of(space, page_gpa(0)), f,
		     "the guest's write moved the page off the device's frame");
	/* The device completes its read into the page. */
	memset((uint8_t *)pin.iov[0].iov_base + 512, 0xdd, 64);
	hva = space_hva(space, page_gpa(0));
	cr_assert_eq(qword_at(hva, OFF), VALUE, "the guest's write is lost");
	cr_assert_eq(hva[512], 0xdd, "the device's write is not where the guest reads");
	cr_assert_eq(hva[575], 0xdd);
	cr_assert_neq(ref, f, "the reader shares the pinned frame");
	assert_page(pool_frame_ptr(pool, ref), pattern(0), false, "reader's copy", 0);
	space_unpin(&pin);
	pool_frame_put(pool, ref);
}

Test(kvm_wp, guest_write_to_a_write_pinned_referenced_page_stays_on_the_device_frame, .init = init,
     .fini = fini, .timeout = 120)
{
	guest_write_to_a_pinned_referenced_page();
}

Test(kvm_wp, guest_write_to_a_write_pinned_referenced_page_on_the_linux_6_1_uffd_path,
     .init = init_compat, .fini = fini, .timeout = 120)
{
	guest_write_to_a_pinned_referenced_page();
}

Test(kvm_wp, guest_write_to_a_page_no_longer_shared_reuses_its_frame, .init = init, .fini = fini,
     .timeout = 120)
{
	uint64_t before[NPAGES];
	struct pool_stats st0, st1;
	struct space *child;
	unsigned int i;

	child = fill_and_fork(before);
	/* The only other sharer goes away: page_count is back to 1. */
	space_destroy(child);
	pool_get_stats(pool, &st0);

	guest_writes_pages(&vm, NPAGES);

	pool_get_stats(pool, &st1);
	for (i = 0; i < NPAGES; i++) {
		cr_assert_eq(space_frame_of(space, page_gpa(i)), before[i],
			     "page %u: an exclusively owned frame was copied", i);
		assert_page(space_hva(space, page_gpa(i)), pattern(i), true, "parent window", i);
	}
	cr_assert_eq(st1.copies, st0.copies, "%" PRIu64 " copies for exclusive pages",
		     st1.copies - st0.copies);
}

Test(kvm_wp, guest_write_to_a_never_written_page_gets_a_fresh_zero_frame, .init = init,
     .fini = fini, .timeout = 120)
{
	const uint8_t *b;
	size_t k;

	cr_assert_eq(space_frame_of(space, page_gpa(0)), MM_NO_FRAME);

	guest_writes_pages(&vm, 1);

	cr_assert_neq(space_frame_of(space, page_gpa(0)), MM_NO_FRAME,
		      "the guest's write left the page without a frame");
	b = space_hva(space, page_gpa(0));
	cr_assert_eq(qword_at(b, OFF), VALUE);
	for (k = 0; k < MM_PAGE_SIZE; k++)
		if (k < OFF || k >= OFF + 8)
			cr_assert_eq(b[k], 0, "byte %zu of a fresh page is 0x%02x", k, b[k]);
}

Test(kvm_wp, child_vm_write_leaves_the_parent_intact, .init = init, .fini = fini, .timeout = 120)
{
	struct space *child;
	struct mkvm cvm;
	unsigned int i;
	int ret;

	fill_pages(space);
	ret = space_fork(space, &child);
	cr_assert_eq(ret, 0, "space_fork: %s", strerror(-ret));
	ret = mkvm_open(&cvm);
	cr_assert_eq(ret, 0, "second VM: %s", strerror(-ret));
	ret = mkvm_set_slot(&cvm, SPACE_SLOT, 0, space_hva(child, 0), SPACE_SIZE);
	cr_assert_eq(ret, 0, "memslot over the child's window: %s", strerror(-ret));

	guest_writes_pages(&cvm, NPAGES);

	for (i = 0; i < NPAGES; i++) {
		assert_page(space_hva(child, page_gpa(i)), pattern(i), true, "child window", i);
		assert_page(space_hva(space, page_gpa(i)), pattern(i), false, "parent window", i);
	}
	mkvm_close(&cvm);
	space_destroy(child);
}
