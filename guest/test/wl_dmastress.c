// SPDX-License-Identifier: MIT
/*
 * dmastress: the DMA-safety harness (issue 10, docs/test-guest.md).  Keeps
 * many virtio-blk reads in flight into buffers whose pages the CPU also
 * writes, forks the machine while they are in flight (guest/abi.h), and in
 * every VM checks each buffer against the disk pattern and each byte the CPU
 * wrote.
 *
 * Memory: one 4 KiB page per slot in free memory.  Bytes 1024..2047 are the
 * DMA buffer (two sectors); bytes 0..1023 ("zone A") and 2048..4095 ("zone
 * B") are CPU markers.  Slots 0..K-1 are the fork slots (read in flight at
 * the fork); then `side` slots for the parent and `side` for the child, read
 * after the fork by that side only.
 *
 * A round: poison every buffer; submit K reads into the fork slots; while
 * they are in flight, write the "pre" markers in zones A and B of every
 * page; fork; each side writes its own "post" markers in zone B of the fork
 * slots and of its side slots (the write that makes a legacy mm policy move
 * the page away from the frame the device still writes), submits its side
 * reads, reaps everything and checks every slot.
 */
#include <stdarg.h>
#include <string.h>

#include "guest/test/console.h"
#include "guest/test/fmt.h"
#include "guest/test/guest.h"
#include "guest/test/io.h"
#include "guest/test/pattern.h"
#include "guest/test/virtio_blk.h"

#define DS_PAGE 4096
#define DS_BUF_OFF 1024
#define DS_BUF_LEN 1024
#define DS_BUF_WORDS (DS_BUF_LEN / 8)
#define DS_BUF_SECTORS (DS_BUF_LEN / VBLK_SECTOR)
#define DS_ZONE_B (2048 / 8) /* first word of zone B */
#define DS_SIDE_MAX 8
#define DS_SLOTS_MAX (VBLK_QUEUE_SIZE + 2 * DS_SIDE_MAX)
#define DS_FORKS_MAX 64
#define DS_DEPTH_MAX 4
#define DS_ROUNDS_MAX 100000
#define DS_VMS_MAX 256 /* the whole family, root included */
#define DS_NAME_MAX 40
#define DS_DETAIL_MAX 8 /* FAIL lines per VM; the counts go on */

/* What a slot's buffer must hold at the check. */
enum ds_want {
	DS_IDLE = 0, /* not used this round */
	DS_DATA, /* this VM read into it: the disk pattern */
	DS_POISON, /* the other side's: nobody in this VM asked for data here */
	DS_FAILED, /* its request failed: already counted, markers still checked */
};

static struct {
	struct vblk blk;
	uint64_t *pages;
	unsigned int k, side, nslots, rounds, forks, depth, gen;
	uint64_t nbufs; /* DS_BUF_LEN buffers on the disk */
	char name[DS_NAME_MAX]; /* "0" for the first VM, then "0.3", "0.3.1": parent.fork */
	uint64_t pre_tag, post_tag; /* markers before the fork, and after it on this side */
	uint8_t want[DS_SLOTS_MAX];
	uint8_t post[DS_SLOTS_MAX]; /* zone B holds post markers */
	uint64_t sector[DS_SLOTS_MAX];
	int slot_of[VBLK_QUEUE_SIZE]; /* token -> slot */
	unsigned int lost, misplaced, checked, nforks, failed, skipped, detail;
	unsigned int nrounds; /* rounds this VM took part in */
	unsigned int nforked; /* forks seen (made, or born from) */
	unsigned int inflight_min, inflight_max; /* at the forks seen */
	unsigned int exposed_min; /* still at the device once this side wrote its markers */
	unsigned int fork_n, fork_ret, fork_pending; /* the last fork, for fork_report() */
} ds;

static uint64_t *page_of(unsigned int slot)
{
	return ds.pages + (uint64_t)slot * (DS_PAGE / 8);
}

static uint64_t *buf_of(unsigned int slot)
{
	return page_of(slot) + DS_BUF_OFF / 8;
}

/* Distinct per round and word; never a disk word or a marker (its shape). */
static uint64_t poison(unsigned int r, unsigned int slot, unsigned int w)
{
	return 0xbad0000000000000ULL | (uint64_t)(r & 0xfffff) << 24 | (uint64_t)slot << 8 | w;
}

static uint64_t marker(uint64_t tag, unsigned int r, unsigned int slot, unsigned int w)
{
	return disk_pattern_splitmix64(tag ^ (uint64_t)r << 40 ^ (uint64_t)slot << 16 ^ w);
}

/* FNV-1a of a VM's name: its markers differ from every other VM's. */
static uint64_t name_tag(const char *s, uint64_t salt)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ salt;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ULL;
	return h;
}

/*
 * VMs in a family where a VM of generation @gen, born at round @born,
 * forks at each later round below ds.forks while @gen < ds.depth.
 * Stops counting past DS_VMS_MAX.
 */
static unsigned int family_size(unsigned int gen, int born)
{
	unsigned int n = 1;
	int r;

	if (gen >= ds.depth)
		return 1;
	for (r = born + 1; r < (int)ds.forks && n <= DS_VMS_MAX; r++)
		n += family_size(gen + 1, r);
	return n;
}

static __attribute__((format(printf, 1, 2))) void detail(const char *fmt, ...)
{
	char line[192];
	va_list ap;

	if (ds.detail++ >= DS_DETAIL_MAX)
		return;
	va_start(ap, fmt);
	fmt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	con_printf("dmastress: vm=%s FAIL %s\n", ds.name, line);
}

static int parse_args(const char *args)
{
	uint64_t forks = 1, rounds = 0, k = 32, depth = 1;

	if (args_get_u64(args, "forks", &forks) < 0 || args_get_u64(args, "rounds", &rounds) < 0 ||
	    args_get_u64(args, "inflight", &k) < 0 || args_get_u64(args, "depth", &depth) < 0) {
		con_printf("dmastress: bad args '%s'\n", args);
		return -1;
	}
	if (!rounds)
		rounds = forks ? forks : 1;
	if (forks > DS_FORKS_MAX || rounds > DS_ROUNDS_MAX || forks > rounds || !k ||
	    k > VBLK_QUEUE_SIZE || !depth || depth > DS_DEPTH_MAX) {
		con_printf("dmastress: args out of range: forks=%lu (0..%u) rounds=%lu (forks..%u) "
			   "inflight=%lu (1..%u) depth=%lu (1..%u)\n",
			   (unsigned long)forks, DS_FORKS_MAX, (unsigned long)rounds, DS_ROUNDS_MAX,
			   (unsigned long)k, VBLK_QUEUE_SIZE, (unsigned long)depth, DS_DEPTH_MAX);
		return -1;
	}
	ds.forks = (unsigned int)forks;
	ds.rounds = (unsigned int)rounds;
	ds.k = (unsigned int)k;
	ds.depth = (unsigned int)depth;
	if (family_size(0, -1) > DS_VMS_MAX) {
		con_printf("dmastress: forks=%u depth=%u make more than %u VMs\n", ds.forks,
			   ds.depth, DS_VMS_MAX);
		return -1;
	}
	return 0;
}

static int setup(const struct wl_ctx *ctx)
{
	uint64_t start = (ctx->m->free_start + DS_PAGE - 1) & ~(uint64_t)(DS_PAGE - 1);
	unsigned int max;
	char err[128];

	if (parse_args(ctx->m->args))
		return GUEST_EXIT_USAGE;
	if (vblk_find(&ds.blk, ctx->m, err, sizeof(err))) {
		con_printf("dmastress: FAIL: no usable virtio-blk: %s\n", err);
		return GUEST_EXIT_NODEV;
	}
	max = vblk_async_max(&ds.blk, DS_BUF_LEN);
	if (ds.k > max) {
		con_printf("dmastress: inflight=%u but the queue holds %u requests of %u bytes "
			   "(queue %u, indirect %s)\n",
			   ds.k, max, DS_BUF_LEN, ds.blk.vr.size,
			   vblk_has(&ds.blk, VIRTIO_F_INDIRECT_DESC) ? "yes" : "no");
		return GUEST_EXIT_USAGE;
	}
	ds.side = max - ds.k < DS_SIDE_MAX ? max - ds.k : DS_SIDE_MAX;
	ds.nslots = ds.k + 2 * ds.side;
	ds.nbufs = ds.blk.capacity / DS_BUF_SECTORS;
	if (ds.nbufs < ds.nslots) {
		con_printf("dmastress: FAIL: the disk has %lu sectors, %u needed\n",
			   (unsigned long)ds.blk.capacity, ds.nslots * DS_BUF_SECTORS);
		return GUEST_EXIT_NODEV;
	}
	if (start + (uint64_t)ds.nslots * DS_PAGE > ctx->m->free_start + ctx->m->free_size) {
		con_printf("dmastress: FAIL: %u pages do not fit in free memory\n", ds.nslots);
		return GUEST_EXIT_NODEV;
	}
	ds.pages = (uint64_t *)(uintptr_t)start;
	ds.inflight_min = ds.exposed_min = ~0u;
	ds.name[0] = '0';
	con_printf("dmastress: virtio-blk at 0x%lx: %lu sectors, queue %u, indirect %s; "
		   "forks=%u rounds=%u inflight=%u depth=%u side=%u, %u VMs in the family\n",
		   (unsigned long)ds.blk.base, (unsigned long)ds.blk.capacity, ds.blk.vr.size,
		   vblk_has(&ds.blk, VIRTIO_F_INDIRECT_DESC) ? "yes" : "no", ds.forks, ds.rounds,
		   ds.k, ds.depth, ds.side, family_size(0, -1));
	return 0;
}

static void write_markers(unsigned int r, unsigned int slot, bool zone_a, uint64_t tag)
{
	uint64_t *p = page_of(slot);
	unsigned int w;

	if (zone_a)
		for (w = 0; w < DS_BUF_OFF / 8; w++)
			p[w] = marker(tag, r, slot, w);
	for (w = DS_ZONE_B; w < DS_PAGE / 8; w++)
		p[w] = marker(tag, r, slot, w);
}

static int submit(unsigned int r, unsigned int slot)
{
	int t;

	ds.sector[slot] = ((uint64_t)r * ds.nslots + slot) % ds.nbufs * DS_BUF_SECTORS;
	t = vblk_submit(&ds.blk, VIRTIO_BLK_T_IN, ds.sector[slot], buf_of(slot), DS_BUF_LEN);
	if (t < 0) {
		/* Cannot happen: setup checked the queue holds k + side requests. */
		detail("round %u: slot %u: no room in the queue", r, slot);
		ds.want[slot] = DS_FAILED;
		ds.lost++;
		return -1;
	}
	ds.slot_of[t] = (int)slot;
	ds.want[slot] = DS_DATA;
	return 0;
}

/* Reap every request in flight.  Return: 0, or -1 when one never completed. */
static int reap_all(unsigned int r)
{
	struct vblk_done done[VBLK_QUEUE_SIZE];
	uint64_t start = rdtsc();
	unsigned int n, i;

	while (vblk_inflight(&ds.blk)) {
		n = vblk_reap(&ds.blk, done, VBLK_QUEUE_SIZE);
		for (i = 0; i < n; i++) {
			unsigned int slot = (unsigned int)ds.slot_of[done[i].token];

			if (done[i].status == VIRTIO_BLK_S_OK && done[i].used_len == DS_BUF_LEN + 1)
				continue;
			detail("round %u: slot %u sector %lu: status %d used.len %u", r, slot,
			       (unsigned long)ds.sector[slot], done[i].status, done[i].used_len);
			ds.want[slot] = DS_FAILED;
			ds.lost++;
		}
		if (n) {
			start = rdtsc();
			continue;
		}
		if (rdtsc() - start > VBLK_TIMEOUT_TSC) {
			detail("round %u: %u requests never completed (%u pending at the device)",
			       r, vblk_inflight(&ds.blk), vblk_pending(&ds.blk));
			ds.lost += vblk_inflight(&ds.blk);
			return -1;
		}
		cpu_relax();
	}
	if (ds.blk.bad_used) {
		detail("round %u: %u used elements named no request in flight", r, ds.blk.bad_used);
		ds.misplaced += ds.blk.bad_used;
		ds.blk.bad_used = 0;
	}
	return 0;
}

static void check_buffer(unsigned int r, unsigned int slot)
{
	const uint64_t *b = buf_of(slot);
	unsigned int w, good = 0, poisoned = 0, foreign = 0;
	uint64_t off = ds.sector[slot] * VBLK_SECTOR;

	for (w = 0; w < DS_BUF_WORDS; w++) {
		if (ds.want[slot] == DS_DATA && b[w] == disk_word(off + 8 * w, DISK_SEED_READ))
			good++;
		else if (b[w] == poison(r, slot, w))
			poisoned++;
		else
			foreign++;
	}
	if (ds.want[slot] == DS_POISON) {
		if (poisoned != DS_BUF_WORDS) {
			detail("misplaced: round %u slot %u: %u of %u words written in a buffer "
			       "this VM never asked to read",
			       r, slot, DS_BUF_WORDS - poisoned, DS_BUF_WORDS);
			ds.misplaced++;
		}
		return;
	}
	if (foreign) {
		detail("misplaced: round %u slot %u sector %lu: %u words neither its data nor "
		       "poison (%u good, %u poison)",
		       r, slot, (unsigned long)ds.sector[slot], foreign, good, poisoned);
		ds.misplaced++;
	} else if (poisoned) {
		detail("lost: round %u slot %u sector %lu: %u of %u words still poison%s", r, slot,
		       (unsigned long)ds.sector[slot], poisoned, DS_BUF_WORDS,
		       poisoned == DS_BUF_WORDS ? " (never written)" : " (partial)");
		ds.lost++;
	}
}

static void check_markers(unsigned int r, unsigned int slot)
{
	const uint64_t *p = page_of(slot);
	uint64_t btag = ds.post[slot] ? ds.post_tag : ds.pre_tag;
	unsigned int w, bad = 0, first = 0;

	for (w = 0; w < DS_PAGE / 8; w++) {
		uint64_t want;

		if (w == DS_BUF_OFF / 8) {
			w = DS_ZONE_B - 1;
			continue;
		}
		want = marker(w < DS_ZONE_B ? ds.pre_tag : btag, r, slot, w);
		if (p[w] != want && !bad++)
			first = w;
	}
	if (bad) {
		detail("misplaced: round %u slot %u: %u CPU-written words overwritten (first at "
		       "byte %u: 0x%lx)",
		       r, slot, bad, first * 8, (unsigned long)p[first]);
		ds.misplaced++;
	}
}

/* What fork_now() did. */
enum ds_fork {
	DS_NO_FORK, /* skipped or failed: the line is printed */
	DS_PARENT,
	DS_CHILD,
};

/*
 * Fork with the fork slots' reads in flight.  The line of a fork made is
 * printed by fork_report(), after this side's markers: console output is
 * slow (an exit per byte), and the markers must hit the pages while the
 * device still writes them.
 */
static enum ds_fork fork_now(unsigned int r)
{
	unsigned int pending = vblk_pending(&ds.blk), n = ds.nforks + 1;
	char parent[DS_NAME_MAX];
	uint32_t ret;

	if (!pending) {
		/* A fork with nothing in flight proves nothing: say so, do not make it. */
		con_printf("dmastress: vm=%s round=%u: no request in flight at the fork point "
			   "(the device completed all %u): fork skipped\n",
			   ds.name, r, ds.k);
		ds.skipped++;
		return DS_NO_FORK;
	}
	ret = guest_fork();
	if (ret == FORK_FAILED || ret == FORK_NONE) {
		con_printf("dmastress: vm=%s fork=%u round=%u inflight=%u ret=%s\n", ds.name, n, r,
			   pending, ret == FORK_FAILED ? "failed" : "none");
		ds.failed++;
		return DS_NO_FORK;
	}
	ds.fork_n = n;
	ds.fork_ret = ret;
	ds.fork_pending = pending;
	if (ret) {
		ds.nforks++;
		return DS_PARENT;
	}
	/* The child: a new name, and the counts of its own life only. */
	memcpy(parent, ds.name, sizeof(parent));
	fmt_snprintf(ds.name, sizeof(ds.name), "%s.%u", parent, n);
	ds.gen++;
	ds.nforks = ds.failed = ds.skipped = ds.nforked = 0;
	ds.lost = ds.misplaced = ds.checked = ds.detail = 0;
	ds.nrounds = 1;
	ds.inflight_min = ds.exposed_min = ~0u;
	ds.inflight_max = 0;
	return DS_CHILD;
}

/*
 * After this side wrote its markers: how many reads are still at the device,
 * i.e. were written by the device after the CPU wrote their pages.  Those are
 * the ones a legacy mm policy loses; 0 means this fork could not show it.
 */
static void fork_report(unsigned int r)
{
	unsigned int exposed = vblk_pending(&ds.blk);

	ds.nforked++;
	if (ds.fork_pending < ds.inflight_min)
		ds.inflight_min = ds.fork_pending;
	if (ds.fork_pending > ds.inflight_max)
		ds.inflight_max = ds.fork_pending;
	if (exposed < ds.exposed_min)
		ds.exposed_min = exposed;
	con_printf("dmastress: vm=%s fork=%u round=%u inflight=%u ret=%u exposed=%u\n", ds.name,
		   ds.fork_n, r, ds.fork_pending, ds.fork_ret, exposed);
}

/* Return: 1 when this VM is done after the round (a child at the depth limit), -1 on a hang. */
static int round_run(unsigned int r)
{
	bool fork_here = r < ds.forks && ds.gen < ds.depth, child;
	enum ds_fork f = DS_NO_FORK;
	unsigned int s, w, own, other;

	for (s = 0; s < ds.nslots; s++) {
		uint64_t *b = buf_of(s);

		for (w = 0; w < DS_BUF_WORDS; w++)
			b[w] = poison(r, s, w);
		ds.want[s] = DS_IDLE;
		ds.post[s] = 0;
	}
	ds.pre_tag = name_tag(ds.name, 1);
	for (s = 0; s < ds.k; s++)
		submit(r, s);
	vblk_kick(&ds.blk);
	/* CPU writes to the same pages while the device writes the buffers. */
	for (s = 0; s < ds.nslots; s++)
		write_markers(r, s, true, ds.pre_tag);
	if (fork_here)
		f = fork_now(r);
	child = f == DS_CHILD;
	ds.post_tag = name_tag(ds.name, 2);
	/* Each side's own markers, before the fork slots' reads complete. */
	for (s = 0; s < ds.k; s++) {
		write_markers(r, s, false, ds.post_tag);
		ds.post[s] = 1;
	}
	if (f != DS_NO_FORK)
		fork_report(r);
	own = ds.k + (child ? ds.side : 0);
	other = ds.k + (child ? 0 : ds.side);
	for (s = own; s < own + ds.side; s++) {
		write_markers(r, s, false, ds.post_tag);
		ds.post[s] = 1;
		submit(r, s);
	}
	for (s = other; s < other + ds.side; s++)
		ds.want[s] = DS_POISON;
	vblk_kick(&ds.blk);
	if (reap_all(r))
		return -1;
	for (s = 0; s < ds.nslots; s++) {
		if (ds.want[s] != DS_FAILED)
			check_buffer(r, s);
		check_markers(r, s);
		ds.checked++;
	}
	return child && ds.gen >= ds.depth;
}

static int dmastress_run(const struct wl_ctx *ctx)
{
	unsigned int r;
	int ret, hang = 0;

	ret = setup(ctx);
	if (ret)
		return ret;
	for (r = 0; r < ds.rounds; r++) {
		ds.nrounds++;
		ret = round_run(r);
		if (ret < 0)
			hang = 1;
		if (ret)
			break;
	}
	if (!ds.nforked)
		ds.inflight_min = ds.exposed_min = 0;
	ret = ds.lost || ds.misplaced || hang ? GUEST_EXIT_FAIL
	      : ds.failed || ds.skipped	      ? GUEST_EXIT_NOFORK
					      : 0;
	con_printf("dmastress: vm=%s lost=%u misplaced=%u checked=%u forks=%u inflight_min=%u "
		   "inflight_max=%u exposed_min=%u failed=%u skipped=%u rounds=%u -> %s\n",
		   ds.name, ds.lost, ds.misplaced, ds.checked, ds.nforks, ds.inflight_min,
		   ds.inflight_max, ds.exposed_min, ds.failed, ds.skipped, ds.nrounds,
		   ret ? "FAIL" : "ok");
	/* For the VMM's per-VM table: misplaced in the high half, lost in the low. */
	outl(PORT_RESULT, (ds.misplaced < 0xffff ? ds.misplaced : 0xffff) << 16 |
			      (ds.lost < 0xffff ? ds.lost : 0xffff));
	return ret;
}

const struct workload wl_dmastress = { "dmastress", false, dmastress_run };
