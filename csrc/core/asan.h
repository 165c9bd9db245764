/* AddressSanitizer redzones inside visionc's own allocators (the activation arena, the
 * training planner's block): buffers carved from one malloc'd block sit side by side, so an
 * overflow of one (scratch sized for fewer threads than ran, say) lands in its neighbour and
 * ASan cannot see it. In an ASan build (`make debug`) every carved buffer follows a poisoned
 * gap, so an overflow into the next buffer is reported (as use-after-poison; past the block's
 * end ASan's own heap redzone reports it). In other builds the gap is zero and the calls vanish. */
#ifndef VC_ASAN_H
#define VC_ASAN_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
enum { VC_ASAN_REDZONE = 64 }; /* bytes; a multiple of 64 keeps the buffers after it aligned */
static inline void vc_asan_poison(const void *p, size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
static inline void vc_asan_unpoison(const void *p, size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
#else
enum { VC_ASAN_REDZONE = 0 };
static inline void vc_asan_poison(const void *p, size_t n) { (void)p, (void)n; }
static inline void vc_asan_unpoison(const void *p, size_t n) { (void)p, (void)n; }
#endif

#endif
