//! The global allocator of ruse's binaries.
//!
//! mimalloc, told never to hand freed memory back to the OS: tensor buffers of the same sizes are
//! freed and re-allocated every step, and with glibc's malloc (or mimalloc's default 10 ms purge)
//! the page faults and page zeroing of fresh mappings cost 15–25% of a training step (measured
//! with perf on the bench net).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_decommits` (see mimalloc.h).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;
/// mimalloc's `mi_option_purge_delay` (see mimalloc.h).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Applies the allocator settings; call first thing in `main`.
pub fn tune() {
    // SAFETY: mi_option_set only stores an integer option; it is safe to call at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0);
    }
}
