"""Memory compaction: Models mm/compaction.c (control structs, suitability, deferral, skip bits,
the two scanners, compact_zone / compact_node, kcompactd)."""
