"""The page allocator: Models mm/page_alloc.c (buddy core, pcp lists, fallback, highatomic,
isolation, watermarks, the free path and the slow path) with include/linux/gfp.h."""
