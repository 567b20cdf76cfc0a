//! What the threads of one forward share: a step team (each step's parts, claimed by their
//! owners or, when an owner is late, by whoever is free) and a plain spin barrier.
//!
//! A time loop split over threads must pass a barrier every step, a few microseconds apart. With
//! a plain barrier, a thread the OS deschedules (on a shared machine, or with more threads than
//! free cores) stalls every other for a whole time slice, milliseconds, at every step it misses:
//! measured here at 100–300× the step's own time while two compilers shared the two cores. So
//! parts are not tied to threads: a thread that finds another's part of the open step still
//! unclaimed after a short grace takes it, and the forward degrades to one thread's speed
//! instead of stalling.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Spins this many rounds before yielding the core while waiting for a part another thread is
/// computing (it may be waiting for this core).
const SPINS_BEFORE_YIELD: u32 = 4_000;

/// How long a thread waits for a part's owner to claim it before taking it: far above the time
/// the owner needs to see the step open (under a microsecond), far below a time slice.
const GRACE: Duration = Duration::from_micros(5);

/// A part (or a wait for one) that takes longer than `STALL_FIXED + STALL_FACTOR ×` the thread's
/// fastest part means the thread lost its core for a time slice (milliseconds), not just for an
/// interrupt (microseconds).
const STALL_FIXED: Duration = Duration::from_micros(500);
const STALL_FACTOR: u32 = 20;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicUsize);

/// The steps of a loop whose every step is `n` independent parts, and step `s + 1` may start
/// once all of step `s` is done.
#[derive(Debug)]
pub(crate) struct StepTeam {
    /// Per part: how many of its steps have been claimed (the next one to claim).
    claims: Vec<Padded>,
    /// Parts completed, over all steps: step `s` is done once this reaches `(s + 1)·n`.
    done: Padded,
    /// Whether a thread left early, having lost its core ([`StepTeam::run`]).
    left: AtomicBool,
}

impl StepTeam {
    /// A team for steps of `n ≥ 1` parts.
    pub(crate) fn new(n: usize) -> StepTeam {
        StepTeam {
            claims: (0..n.max(1)).map(|_| Padded::default()).collect(),
            done: Padded::default(),
            left: AtomicBool::new(false),
        }
    }

    /// Whether a thread left early because it (or another) lost its core: the machine did not
    /// have a free core per thread during this loop.
    pub(crate) fn contended(&self) -> bool {
        self.left.load(Ordering::Relaxed)
    }

    fn parts(&self) -> usize {
        self.claims.len()
    }

    /// Takes part `q` of step `s`, if nobody has.
    #[inline]
    fn claim(&self, q: usize, s: usize) -> bool {
        self.claims[q]
            .0
            .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Waits until `done ≥ target`.
    #[inline]
    fn wait_done(&self, target: usize) {
        let mut spins = 0u32;
        while self.done.0.load(Ordering::Acquire) < target {
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Runs steps `0..steps` as thread `me` (the owner of part `me`; any number of threads may
    /// call this, each with its own `me`, and one alone runs every part): `work(q, s)` computes
    /// part `q` of step `s`, and runs exactly once per `(q, s)`, after every part of step
    /// `s − 1` has returned; whatever a part wrote is visible to the parts of later steps.
    ///
    /// Thread 0 stays to the end. Any other thread leaves once it is clear that the threads do
    /// not all have a core (a part or a wait took a time slice rather than microseconds, or its
    /// part was taken over at more than one step in 64): from then on the others take its
    /// parts without waiting for it, and the loop runs at the speed of the threads that remain.
    pub(crate) fn run(&self, me: usize, steps: usize, mut work: impl FnMut(usize, usize)) {
        let n = self.parts();
        let mut s = 0;
        // Whether this thread took another's part last step: its owner is away, so do not wait.
        let mut owner_away = false;
        // This thread's fastest part so far: what "far longer" is measured against.
        let mut best = Duration::MAX;
        // Whether this thread has run its own part yet: until then, finding it taken only means
        // the thread started late (a spawn takes tens of microseconds) and joins at a later step.
        let mut joined = me == 0;
        // How often this thread's part was taken over after it joined.
        let mut taken = 0usize;
        let stalled = |dt: Duration, best: Duration| {
            best != Duration::MAX && dt > STALL_FIXED + best.saturating_mul(STALL_FACTOR)
        };
        while s < steps {
            let t_wait = Instant::now();
            self.wait_done(s * n);
            if me != 0 && joined && stalled(t_wait.elapsed(), best) {
                self.left.store(true, Ordering::Relaxed);
                break;
            }
            if me < n {
                if self.claim(me, s) {
                    joined = true;
                    let t0 = Instant::now();
                    work(me, s);
                    self.done.0.fetch_add(1, Ordering::Release);
                    let dt = t0.elapsed();
                    if me != 0 && stalled(dt, best) {
                        self.left.store(true, Ordering::Relaxed);
                        break;
                    }
                    best = best.min(dt);
                } else if me != 0 && joined {
                    // Taken over: this thread was away for more than the grace, once in a
                    // while an interrupt does that; often, the thread shares its core.
                    taken += 1;
                    if taken > 4 + steps / 64 {
                        self.left.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            let mut took = false;
            for q in (me + 1..n).chain(0..me.min(n)) {
                if self.claims[q].0.load(Ordering::Acquire) != s {
                    continue;
                }
                if !owner_away {
                    let t0 = Instant::now();
                    let mut spins = 0u32;
                    while self.claims[q].0.load(Ordering::Acquire) == s {
                        std::hint::spin_loop();
                        spins += 1;
                        if spins.is_multiple_of(64) && t0.elapsed() > GRACE {
                            break;
                        }
                    }
                }
                if self.claim(q, s) {
                    work(q, s);
                    self.done.0.fetch_add(1, Ordering::Release);
                    took = true;
                }
            }
            owner_away = took;
            // Next step, or the one the team has reached if this thread fell behind.
            s = (s + 1).max(self.done.0.load(Ordering::Acquire) / n);
        }
        if me == 0 {
            // Return only once every part is done, so the caller may read the results.
            self.wait_done(steps * n);
        }
    }
}

/// A reusable barrier for `n` threads: an arrival counter and a generation, both atomics.
#[derive(Debug)]
pub(crate) struct SpinBarrier {
    n: usize,
    count: Padded,
    generation: Padded,
}

impl SpinBarrier {
    /// A barrier for `n` threads (`n ≥ 1`; with 1, `wait` returns at once).
    pub(crate) fn new(n: usize) -> SpinBarrier {
        SpinBarrier {
            n: n.max(1),
            count: Padded::default(),
            generation: Padded::default(),
        }
    }

    /// Returns once all `n` threads have called `wait` for this round.
    pub(crate) fn wait(&self) {
        if self.n == 1 {
            return;
        }
        let generation = self.generation.0.load(Ordering::Acquire);
        if self.count.0.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            // Last to arrive: reset the count before releasing the others, who only touch it
            // again after they see the new generation.
            self.count.0.store(0, Ordering::Relaxed);
            self.generation
                .0
                .store(generation.wrapping_add(1), Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.0.load(Ordering::Acquire) == generation {
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SpinBarrier, StepTeam};
    use std::sync::atomic::{AtomicUsize, Ordering};

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
                            b.wait();
                            assert_eq!(hits.load(Ordering::Relaxed), n * (round + 1));
                            b.wait();
                        }
                    });
                }
            });
        }
    }

    /// Every (part, step) runs once, in step order, with any number of threads (fewer than
    /// parts too: the rest is taken over).
    #[test]
    fn team_runs_every_part_once_in_step_order() {
        for (parts, threads) in [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3), (4, 5)] {
            let steps = 300;
            let team = StepTeam::new(parts);
            let runs: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            let done_steps = AtomicUsize::new(0);
            std::thread::scope(|sc| {
                for me in 0..threads {
                    let (team, runs, done_steps) = (&team, &runs, &done_steps);
                    sc.spawn(move || {
                        team.run(me, steps, |q, s| {
                            // Every part of the step before has run.
                            for r in runs.iter() {
                                assert!(r.load(Ordering::SeqCst) >= s);
                            }
                            assert_eq!(runs[q].fetch_add(1, Ordering::SeqCst), s);
                            done_steps.fetch_add(1, Ordering::SeqCst);
                        });
                    });
                }
            });
            assert_eq!(done_steps.load(Ordering::SeqCst), parts * steps);
        }
    }
}
