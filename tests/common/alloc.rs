//! Counting the allocations of the current thread: a test checks that a warm hot path
//! allocates nothing while other tests run in parallel. A binary that uses it installs
//! [`CountingAlloc`] as its `#[global_allocator]` in its `main.rs`.

/// The system allocator, counting each thread's allocations and reallocations.
pub struct CountingAlloc;

thread_local! {
    static ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Allocations and reallocations made by this thread so far.
pub fn count() -> usize {
    ALLOCS.with(|c| c.get())
}

// SAFETY: forwards every call to the system allocator; the counter is a const-initialised
// thread-local `Cell`, which never allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}
