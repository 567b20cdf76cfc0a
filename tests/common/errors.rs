//! Checking refusals: the error's kind and what its message says.

use wgpu_gru::Error;

/// Asserts `r` is an error matching `pred`, and that its message mentions every needle.
#[track_caller]
pub fn refused<X: std::fmt::Debug>(
    r: wgpu_gru::Result<X>,
    pred: impl Fn(&Error) -> bool,
    needles: &[&str],
) {
    match r {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => {
            assert!(pred(&e), "wrong error kind: {e:?}");
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "{n:?} not in {msg:?}");
            }
            // Wrapped arithmetic (`3 · usize::MAX` and the like) shows up as numbers just below
            // 2^64 in messages; `usize::MAX` itself is a value the tests declare.
            for num in msg.split(|c: char| !c.is_ascii_digit()) {
                if let Ok(v) = num.parse::<u128>() {
                    let near_wrap = v > (u64::MAX - (1 << 20)) as u128 && v < u64::MAX as u128;
                    assert!(!near_wrap, "overflowed arithmetic in the message: {msg}");
                }
            }
        }
    }
}

pub fn is_parse(e: &Error) -> bool {
    matches!(e, Error::Parse { .. })
}
pub fn is_shape(e: &Error) -> bool {
    matches!(e, Error::ShapeMismatch { .. })
}
pub fn is_missing(e: &Error) -> bool {
    matches!(e, Error::MissingTensor { .. })
}
pub fn is_dtype(e: &Error) -> bool {
    matches!(e, Error::UnsupportedDtype { .. })
}
pub fn is_arg(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}
pub fn is_config(e: &Error) -> bool {
    matches!(e, Error::InvalidConfig(_))
}
pub fn is_layout(e: &Error) -> bool {
    matches!(e, Error::UnknownLayout(_))
}
pub fn is_overflow(e: &Error) -> bool {
    matches!(e, Error::Overflow(_))
}
pub fn is_device_lost(e: &Error) -> bool {
    matches!(e, Error::DeviceLost(_))
}
