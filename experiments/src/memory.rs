//! Heap accounting for benchmarks: [`CountingAllocator`] wraps the process's global allocator and
//! keeps the live heap bytes and their high-water mark, so a benchmark can report the peak memory
//! of one operation (mark with [`reset_peak`], run, read [`peak_bytes`]) rather than the
//! process-lifetime resident peak (`VmHWM`), which only ever grows.
//!
//! Only a binary that installs the wrapper as its `#[global_allocator]` counts; elsewhere
//! (library tests) [`installed`] is false and the figures are absent, never zero.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A global allocator that counts the bytes it hands out around an inner allocator.
pub struct CountingAllocator<A>(pub A);

impl<A> CountingAllocator<A> {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    fn shrank(size: usize) {
        LIVE.fetch_sub(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged and
// returns its result; the counters are plain atomics and never touch the memory.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract (non-zero-size layout, guaranteed by the caller).
        let ptr = unsafe { self.0.alloc(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
            INSTALLED.store(true, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.0.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract (ptr came from this allocator with this layout).
        unsafe { self.0.dealloc(ptr, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                Self::grew(new_size - layout.size());
            } else {
                Self::shrank(layout.size() - new_size);
            }
        }
        new
    }
}

/// Whether the running binary counts allocations.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Live heap bytes now.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Start a new high-water mark at the live bytes now, and return them.
pub fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// The most live heap bytes since the last [`reset_peak`] (or the start), `None` where the
/// allocator is not installed.
pub fn peak_bytes() -> Option<u64> {
    installed().then(|| PEAK.load(Ordering::Relaxed) as u64)
}
