#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The mutations of make mutate: each removes a fence, a write-back or an
ordering that durability depends on, or stores around flush.c.

    mutations.py list          name, flush_mode:block_size to run it
                               under, and what it breaks
    mutations.py apply NAME DIR   apply one to the tree at DIR

A mutation is a text replacement in one file; if its text is no longer in
the file, apply fails loudly (the engine moved: update the mutation).
"""
import sys

MUTATIONS = [
    ("publish", "io.c",
     "a writer leaves its epoch without publishing its stores (rule 2)",
     "\tif (!pmc_on_bdev(pc))\n\t\tpmc_publish_stores(&pc->flush);\n", ""),
    ("commit-fence-entries", "commit.c",
     "the commit writes its record without fencing first (rule 2)",
     "\t\tif (pmc_medium_failed(pc) || pmc_meta_barrier(pc) ||\n",
     "\t\tif (pmc_medium_failed(pc) ||\n"),
    ("commit-fence-record", "commit.c",
     "the commit record is not fenced before the commit counts (rule 2)",
     "\t\t\tsizeof(c));\n\treturn pmc_meta_barrier(pc);\n",
     "\t\t\tsizeof(c));\n\treturn 0;\n"),
    ("commit-fence-superseded", "commit.c",
     "superseded entries zeroed but not fenced before their blocks are freed (rules 3, 4)",
     "\tif (freed && pmc_meta_barrier(pc)) {", "\tif (0) {"),
    ("commit-keep-superseded", "commit.c",
     "superseded blocks freed without zeroing their entries (rules 3, 4)",
     "\tlist_for_each_entry(b, &done, list)\n\t\tpmc_clear_entry(pc, pmc_idx(pc, b));\n\tif (freed && ",
     "\tif (freed && "),
    ("wb-fence", "writeback.c",
     "written-back blocks freed before their zeroed entries are fenced (rule 3)",
     "\t\tpmc_clear_entry(pc, pmc_idx(pc, b));\n\tif (pmc_meta_barrier(pc)) {\n",
     "\t\tpmc_clear_entry(pc, pmc_idx(pc, b));\n\tif (0) {\n"),
    ("wb-no-clear", "writeback.c",
     "written-back blocks freed with their entries still valid (rule 3)",
     "\tlist_for_each_entry(b, &done, list)\n\t\tpmc_clear_entry(pc, pmc_idx(pc, b));\n\tif (pmc_meta_barrier(pc)) {\n",
     "\tif (pmc_meta_barrier(pc)) {\n"),
    ("discard-fence", "io.c",
     "discarded blocks freed before their zeroed entries are fenced (rule 4)",
     "\t\t\t} else {\n\t\t\t\tpmc_fence();\n\t\t\t}\n",
     "\t\t\t}\n"),
    ("fresh-fence", "io.c",
     "new blocks' data not fenced before readers may copy it (a visibility fence)",
     "\t\t\t/* Visible before a reader may copy it out. */\n\t\t\tpmc_fence();\n",
     "\t\t\t/* Visible before a reader may copy it out. */\n"),
    ("load-fence", "format.c",
     "recovery does not fence the leftovers it zeroed before the cache is used (rule 5)",
     "\t\tpc->nr_free++;\n\t}\n\tif (pmc_meta_barrier(pc)) {",
     "\t\tpc->nr_free++;\n\t}\n\tif (0) {"),
    ("format-sb-first", "format.c",
     "format writes the superblock before commit record 0 (rule 6)",
     "\t/* Fences: everything above durable. */\n"
     "\tif (pmc_write_commit(pc, 0))\n"
     "\t\treturn -EIO;\n"
     "\tpmc_test_point(PMC_TP_FORMAT_MID);\n"
     "\thead = cpu_to_le64((u64)PMC_VERSION << 32 | PMC_MAGIC);\n"
     "\tsb.version = 0;\n"
     "\tpmc_meta_copy(pc, pc->sb, &sb, sizeof(sb));\n"
     "\tif (pmc_meta_barrier(pc))\n"
     "\t\treturn -EIO;\n"
     "\tpmc_meta_u64(pc, (__le64 *)pc->sb, head);\n"
     "\tif (pmc_meta_barrier(pc))\n"
     "\t\treturn -EIO;\n",
     "\thead = cpu_to_le64((u64)PMC_VERSION << 32 | PMC_MAGIC);\n"
     "\tsb.version = 0;\n"
     "\tpmc_meta_copy(pc, pc->sb, &sb, sizeof(sb));\n"
     "\tif (pmc_meta_barrier(pc))\n"
     "\t\treturn -EIO;\n"
     "\tpmc_meta_u64(pc, (__le64 *)pc->sb, head);\n"
     "\tif (pmc_meta_barrier(pc))\n"
     "\t\treturn -EIO;\n"
     "\tpmc_test_point(PMC_TP_FORMAT_MID);\n"
     "\tif (pmc_write_commit(pc, 0))\n"
     "\t\treturn -EIO;\n"),
    ("format-no-marker", "format.c",
     "format writes no 'under way' marker first: a torn superblock body is refused (rule 6)",
     "\tpmc_meta_u64(pc, (__le64 *)pc->sb, cpu_to_le64(PMC_MAGIC));\n\tif (pmc_meta_barrier(pc))\n\t\treturn -EIO;\n",
     ""),
    ("format-fence-sb", "format.c",
     "format's superblock is never fenced (rule 6)",
     "\tpmc_meta_copy(pc, pc->sb, &sb, sizeof(sb));\n\tif (pmc_meta_barrier(pc))\n\t\treturn -EIO;\n",
     "\tpmc_meta_copy(pc, pc->sb, &sb, sizeof(sb));\n"),
    ("wb-nofua-no-flush", "writeback.c",
     "with nofua, written-back blocks freed without flushing the origin (rule 3)",
     "\t\tflush_err = pmc_pcheck_cut() ? -EIO :\n\t\t\tblkdev_issue_flush(pc->origin->bdev);\n",
     "\t\tflush_err = 0;\n", "auto:4096:nofua"),
    ("bypass-clear", "index.c",
     "entries zeroed by a plain store, around flush.c (never written back)",
     "\tpmc_meta_u64(pc, &pc->entries[i].seq, 0);\n",
     "\tWRITE_ONCE(pc->entries[i].seq, 0);\n"),
    # s mode (the cache on a block device), run under tests/cases/ssd_crash.
    ("s-commit-barrier", "commit.c",
     "s mode: the commit record written in the same flush as the data and entries it covers (rule 2)",
     "\t\tif (pmc_medium_failed(pc) || pmc_meta_barrier(pc) ||\n",
     "\t\tif (pmc_medium_failed(pc) ||\n", "ssd"),
    ("s-wb-barrier", "writeback.c",
     "s mode: written-back blocks freed before their zeroed entries are written (rule 3)",
     "\t\tpmc_clear_entry(pc, pmc_idx(pc, b));\n\tif (pmc_meta_barrier(pc)) {\n",
     "\t\tpmc_clear_entry(pc, pmc_idx(pc, b));\n\tif (0) {\n", "ssd"),
    ("s-no-device-flush", "bdev_medium.c",
     "s mode: a barrier writes the metadata but never flushes the cache device",
     "\tr = blkdev_issue_flush(pc->cache_dev->bdev);\n",
     "\tr = 0;\n", "ssd"),
    # The conversion of dm-writecache's caches, run under
    # tests/cases/writecache_import's power cuts.
    ("wc-no-origin-flush", "writecache_format.c",
     "dm-writecache's dirty data written to the origin, not flushed, before its commits are undone (rule 7)",
     "\tr = pmc_pcheck_cut() ? -EIO : blkdev_issue_flush(pc->origin->bdev);\n",
     "\tr = pmc_pcheck_cut() ? -EIO : 0;\n", "wc"),
    ("wc-seq-unfenced", "writecache_format.c",
     "dm-writecache's sequence set to 0 but not fenced before its superblock is zeroed (rule 7)",
     "offsetof(struct pmc_wc_sb, seq), 0);\n\t\tif (pmc_meta_barrier(pc))\n\t\t\tgoto bad_write;\n",
     "offsetof(struct pmc_wc_sb, seq), 0);\n", "wc"),
    ("copy-no-flush", "flush.c",
     "clwb mode copies without writing the lines back (no clwb)",
     "\t\tmemcpy(dst, src, len);\n\t\tpmc_flush_lines(mode, dst, len, &op);\n",
     "\t\tmemcpy(dst, src, len);\n", "clwb:4096"),
]


def find(name):
    for m in MUTATIONS:
        if m[0] == name:
            return m
    sys.exit(f"no mutation {name}")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "list":
        for m in MUTATIONS:
            print(f"{m[0]}\t{m[5] if len(m) > 5 else 'auto:4096'}\t{m[2]}")
        return
    if len(sys.argv) != 4 or sys.argv[1] != "apply":
        sys.exit(__doc__)
    name, _file, _what, old, new = find(sys.argv[2])[:5]
    path = f"{sys.argv[3]}/{_file}"
    text = open(path).read()
    if text.count(old) != 1:
        sys.exit(f"mutation {name}: its text is in {_file} {text.count(old)} times, not once")
    open(path, "w").write(text.replace(old, new))


if __name__ == "__main__":
    main()
