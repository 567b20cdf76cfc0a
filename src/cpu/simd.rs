//! A small SIMD abstraction: one generic kernel source, instantiated for AVX-512, AVX2+FMA and a
//! portable fallback, chosen once at run time (no `target-cpu=native` needed).
//!
//! Every method is `#[inline(always)]` so that it is inlined into a caller compiled with
//! `#[target_feature]`; the intrinsics then inline too and the whole hot loop is straight SIMD.
//! Also here: f32 `exp`, `sigmoid` and `tanh` built from those primitives (Cephes polynomials,
//! a few ulp), because the scalar `std` versions would cost more per step than the matrix product
//! at the small hidden sizes.

#![allow(unsafe_op_in_unsafe_fn)]

/// A vector of `W` f32 lanes and the operations the GRU kernels need.
///
/// # Safety
/// Implementations for a CPU feature set may only be called from code running on a CPU that has
/// it (the callers check with `is_x86_feature_detected!` once, in [`Isa::detect`]).
pub(crate) trait Simd: Copy {
    /// The vector type.
    type V: Copy;
    /// Lanes per vector.
    const W: usize;
    /// Most rows a matrix micro-kernel keeps in registers (`MR × 4` accumulators, leaving room
    /// for the weight vectors and a broadcast).
    const MR: usize;
    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `W` floats.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned load of `W` IEEE f16 values (raw bits), widened to f32 exactly.
    unsafe fn load_f16(p: *const u16) -> Self::V;
    /// Unaligned store of `W` floats.
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c`, fused where the ISA has FMA.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `if a < b { a } else { b }` per lane: `b` when either is NaN (x86 semantics).
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// `if a > b { a } else { b }` per lane: `b` when either is NaN (x86 semantics).
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn abs(a: Self::V) -> Self::V;
    /// Round to nearest integer (ties to even), as floats.
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2^n` for integral `n` in `[-126, 127]`, built from the exponent bits.
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// Per lane: `if x > y { a } else { b }`.
    unsafe fn select_gt(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// Per lane: `if x >= y { a } else { b }`.
    unsafe fn select_ge(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// Copies the sign of `s` onto `a` (which must be non-negative).
    unsafe fn copysign(a: Self::V, s: Self::V) -> Self::V;
    /// `1/a` to within about 1 ulp (a reciprocal estimate refined by Newton's method, which is
    /// cheaper than a division).
    #[inline(always)]
    unsafe fn recip(a: Self::V) -> Self::V {
        Self::div(Self::splat(1.0), a)
    }
    /// Hints that the cache line holding `p` will be read soon (no-op where unsupported).
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        let _ = p;
    }
    /// `a · 2^n` for integral `n` in `[-126, 127]`.
    #[inline(always)]
    unsafe fn scale2(a: Self::V, n: Self::V) -> Self::V {
        Self::mul(a, Self::pow2i(n))
    }
}

/// The instruction set picked at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F (16 lanes).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 + FMA (8 lanes).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Portable code; LLVM may still vectorise it for the baseline target.
    Portable,
}

impl Isa {
    /// The best ISA this CPU supports, at most `max`.
    pub(crate) fn detect_up_to(max: super::SimdLevel) -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use super::SimdLevel;
            use std::arch::is_x86_feature_detected as has;
            // The AVX-512 kernels are compiled with AVX2, FMA and F16C enabled too, so check all.
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            if max >= SimdLevel::Avx512 && avx2 && has!("avx512f") {
                return Isa::Avx512;
            }
            if max >= SimdLevel::Avx2 && avx2 {
                return Isa::Avx2;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = max;
        Isa::Portable
    }
}

// Cephes expf constants.
const EXP_HI: f32 = 88.0;
const EXP_LO: f32 = -87.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5e-1,
];
// Cephes tanhf odd polynomial for |x| < 0.625.
const TANH_P: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// `e^x` in f32, relative error a few ulp; inputs are clamped to `[-87, 88]` so the result is
/// finite and normal (`e^-87` stands in for 0, which no caller can tell apart). NaN stays NaN.
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    // Bound first, x second: x86 min/max return their second operand when either is NaN, so
    // this order lets NaN through (as the f64 reference and the frameworks do).
    let x = S::max(S::splat(EXP_LO), S::min(S::splat(EXP_HI), x));
    let n = S::round(S::mul(x, S::splat(LOG2E)));
    // r = x − n·ln2, in two parts so that r is exact to f32 precision.
    let r = S::fma(n, S::splat(-LN2_HI), x);
    let r = S::fma(n, S::splat(-LN2_LO), r);
    let mut p = S::splat(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = S::fma(p, r, S::splat(c));
    }
    let r2 = S::mul(r, r);
    let y = S::add(S::fma(p, r2, r), S::splat(1.0));
    S::scale2(y, n)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) unsafe fn sigmoid<S: Simd>(x: S::V) -> S::V {
    let one = S::splat(1.0);
    S::recip(S::add(one, exp::<S>(S::sub(S::splat(0.0), x))))
}

/// `tanh(x)`: an odd polynomial near 0 (no cancellation), `1 − 2/(e^{2|x|}+1)` elsewhere.
#[inline(always)]
pub(crate) unsafe fn tanh<S: Simd>(x: S::V) -> S::V {
    let ax = S::abs(x);
    let one = S::splat(1.0);
    let e = exp::<S>(S::add(ax, ax));
    let big = S::fma(S::splat(-2.0), S::recip(S::add(e, one)), one);
    let big = S::copysign(big, x);
    let z = S::mul(x, x);
    let mut p = S::splat(TANH_P[0]);
    for &c in &TANH_P[1..] {
        p = S::fma(p, z, S::splat(c));
    }
    let small = S::fma(S::mul(p, z), x, x);
    S::select_ge(ax, S::splat(0.625), big, small)
}

/// The portable "vector": 8 plain lanes; LLVM vectorises these loops for the baseline target.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

macro_rules! lanes {
    (|$i:ident| $e:expr) => {{
        let mut o = [0.0f32; 8];
        for $i in 0..8 {
            o[$i] = $e;
        }
        o
    }};
}

impl Simd for Portable {
    type V = [f32; 8];
    const W: usize = 8;
    const MR: usize = 3;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        std::ptr::read_unaligned(p as *const [f32; 8])
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self::V {
        let bits = std::ptr::read_unaligned(p as *const [u16; 8]);
        lanes!(|i| half::f16::from_bits(bits[i]).to_f32())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        std::ptr::write_unaligned(p as *mut [f32; 8], v)
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| a[i] + b[i])
    }
    #[inline(always)]
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| a[i] - b[i])
    }
    #[inline(always)]
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| a[i] * b[i])
    }
    #[inline(always)]
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| a[i] / b[i])
    }
    #[inline(always)]
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // mul_add would call the libm fallback without hardware FMA; plain a·b + c is
        // accurate enough for these kernels.
        lanes!(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| if a[i] < b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn abs(a: Self::V) -> Self::V {
        lanes!(|i| a[i].abs())
    }
    #[inline(always)]
    unsafe fn round(a: Self::V) -> Self::V {
        lanes!(|i| a[i].round_ties_even())
    }
    #[inline(always)]
    unsafe fn pow2i(n: Self::V) -> Self::V {
        lanes!(|i| f32::from_bits(((n[i] as i32 + 127) as u32) << 23))
    }
    #[inline(always)]
    unsafe fn select_gt(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| if x[i] > y[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn select_ge(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V {
        lanes!(|i| if x[i] >= y[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn copysign(a: Self::V, s: Self::V) -> Self::V {
        lanes!(|i| a[i].copysign(s[i]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// AVX2 + FMA, 8 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2;

    impl Simd for Avx2 {
        type V = __m256;
        const W: usize = 8;
        const MR: usize = 3;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn load_f16(p: *const u16) -> Self::V {
            _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            _mm256_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
            _mm256_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
            _mm256_mul_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
            _mm256_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
            _mm256_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            _mm256_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn abs(a: Self::V) -> Self::V {
            _mm256_andnot_ps(_mm256_set1_ps(-0.0), a)
        }
        #[inline(always)]
        unsafe fn round(a: Self::V) -> Self::V {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
        }
        #[inline(always)]
        unsafe fn pow2i(n: Self::V) -> Self::V {
            let i = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(i))
        }
        #[inline(always)]
        unsafe fn select_gt(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V {
            _mm256_blendv_ps(b, a, _mm256_cmp_ps::<_CMP_GT_OQ>(x, y))
        }
        #[inline(always)]
        unsafe fn select_ge(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V {
            _mm256_blendv_ps(b, a, _mm256_cmp_ps::<_CMP_GE_OQ>(x, y))
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        }
        #[inline(always)]
        unsafe fn copysign(a: Self::V, s: Self::V) -> Self::V {
            let sign = _mm256_set1_ps(-0.0);
            _mm256_or_ps(a, _mm256_and_ps(s, sign))
        }
    }

    /// AVX-512F, 16 lanes.
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        type V = __m512;
        const W: usize = 16;
        const MR: usize = 6;
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn load_f16(p: *const u16) -> Self::V {
            _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn sub(a: Self::V, b: Self::V) -> Self::V {
            _mm512_sub_ps(a, b)
        }
        #[inline(always)]
        unsafe fn mul(a: Self::V, b: Self::V) -> Self::V {
            _mm512_mul_ps(a, b)
        }
        #[inline(always)]
        unsafe fn div(a: Self::V, b: Self::V) -> Self::V {
            _mm512_div_ps(a, b)
        }
        #[inline(always)]
        unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn min(a: Self::V, b: Self::V) -> Self::V {
            _mm512_min_ps(a, b)
        }
        #[inline(always)]
        unsafe fn max(a: Self::V, b: Self::V) -> Self::V {
            _mm512_max_ps(a, b)
        }
        #[inline(always)]
        unsafe fn abs(a: Self::V) -> Self::V {
            _mm512_abs_ps(a)
        }
        #[inline(always)]
        unsafe fn round(a: Self::V) -> Self::V {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
        }
        #[inline(always)]
        unsafe fn pow2i(n: Self::V) -> Self::V {
            let i = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(i))
        }
        #[inline(always)]
        unsafe fn select_gt(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V {
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, y), b, a)
        }
        #[inline(always)]
        unsafe fn select_ge(x: Self::V, y: Self::V, a: Self::V, b: Self::V) -> Self::V {
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, y), b, a)
        }
        #[inline(always)]
        unsafe fn prefetch(p: *const f32) {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        }
        #[inline(always)]
        unsafe fn recip(a: Self::V) -> Self::V {
            // 14-bit estimate, one Newton step: error ~2^-28, below f32 rounding.
            let r = _mm512_rcp14_ps(a);
            _mm512_fmadd_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(1.0)), r)
        }
        #[inline(always)]
        unsafe fn scale2(a: Self::V, n: Self::V) -> Self::V {
            _mm512_scalef_ps(a, n)
        }
        #[inline(always)]
        unsafe fn copysign(a: Self::V, s: Self::V) -> Self::V {
            let sign = _mm512_set1_epi32(i32::MIN);
            let sb = _mm512_and_si512(_mm512_castps_si512(s), sign);
            _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), sb))
        }
    }
}
