"""Reclaim: Models mm/vmscan.c (direct reclaim, kswapd), mm/swap.c (the LRU lists) and mm/rmap.c."""
