//! What the threads of one forward share: a spin barrier, cheap enough to pass once per step.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins this many rounds before yielding the core: a step's partner arrives within
/// microseconds when both threads run, but on a machine with more threads than free cores a
/// spinning waiter must let the late one run.
const SPINS_BEFORE_YIELD: u32 = 20_000;

/// A reusable barrier for `n` threads: an arrival counter and a generation, both atomics
/// (no mutex, no system call while the threads keep up with each other).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct SpinBarrier {
    n: usize,
    count: AtomicUsize,
    /// On a cache line of its own: waiters poll it while arrivals bump `count`.
    generation: Padded,
    /// Set by [`SpinBarrier::abort`]: every wait returns `false` from then on.
    aborted: AtomicBool,
}

#[derive(Debug)]
#[repr(align(128))]
struct Padded(AtomicUsize);

impl SpinBarrier {
    /// A barrier for `n` threads (`n ≥ 1`; with 1, `wait` returns at once).
    pub(crate) fn new(n: usize) -> SpinBarrier {
        SpinBarrier {
            n: n.max(1),
            count: AtomicUsize::new(0),
            generation: Padded(AtomicUsize::new(0)),
            aborted: AtomicBool::new(false),
        }
    }

    /// Releases every waiter, now and later, with `false` (a thread that was to take part could
    /// not be started).
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
    }

    /// Returns `true` once all `n` threads have called `wait` for this round: writes made before
    /// the call by any thread are then visible to every thread. Returns `false` if the barrier
    /// was aborted.
    #[inline]
    pub(crate) fn wait(&self) -> bool {
        if self.n == 1 {
            return true;
        }
        let generation = self.generation.0.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            // Last to arrive: reset the count before releasing the others, who only touch it
            // again after they see the new generation.
            self.count.store(0, Ordering::Relaxed);
            self.generation
                .0
                .store(generation.wrapping_add(1), Ordering::Release);
            return true;
        }
        let mut spins = 0u32;
        while self.generation.0.load(Ordering::Acquire) == generation {
            if self.aborted.load(Ordering::Relaxed) {
                return false;
            }
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::SpinBarrier;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn every_round_sees_every_arrival() {
        for n in 1..=3 {
            let b = SpinBarrier::new(n);
            let hits = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..n {
                    s.spawn(|| {
                        for round in 0..200 {
                            hits.fetch_add(1, Ordering::Relaxed);
                            assert!(b.wait());
                            assert_eq!(hits.load(Ordering::Relaxed), n * (round + 1));
                            assert!(b.wait());
                        }
                    });
                }
            });
        }
    }
}

#[cfg(test)]
mod abort_tests {
    use super::SpinBarrier;

    #[test]
    fn abort_releases_waiters() {
        let b = SpinBarrier::new(3);
        std::thread::scope(|s| {
            let w = s.spawn(|| b.wait());
            b.abort();
            assert!(!w.join().unwrap_or(true));
        });
    }
}
