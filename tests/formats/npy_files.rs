//! Malformed `.npy` files are refused with a typed `Error`, never a panic: bad magic, versions
//! and headers, truncated or trailing data, unsupported dtypes, absurd shapes; typed conversions,
//! missing files and bad writes.

use crate::common;

use common::errors::{is_arg, is_dtype, is_overflow, is_parse, is_shape, refused};
use common::npy_file::{dict, raw};
use wgpu_gru::{Error, npy};

#[test]
fn malformed_npy() {
    let p = |b: &[u8]| npy::parse(b, "a.npy");
    refused(
        p(b"\x93NUMPX\x01\x00\x00\x00"),
        is_parse,
        &["a.npy", "magic"],
    );
    refused(p(b"\x93NUMPY\x09\x00\x00\x00"), is_parse, &["version"]);
    refused(
        p(b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}"),
        is_parse,
        &["header"],
    );
    refused(p(b"\x93NUMPY\x01\x00\x40\x00{}"), is_parse, &["truncated"]);
    refused(
        p(&raw(1, &dict("<f4", false, "(2,)"), &[0; 7])),
        is_parse,
        &["truncated"],
    );
    refused(
        p(&raw(1, &dict("<f4", false, "(2,)"), &[0; 9])),
        is_parse,
        &["trailing"],
    );
    for descr in ["<u4", "<c8", "<i2", "<U3", "O", "<f16", ""] {
        refused(p(&raw(1, &dict(descr, false, "(0,)"), &[])), is_dtype, &[]);
    }
    refused(
        p(&raw(
            1,
            &dict("<f8", false, "(4294967296, 4294967296, 4)"),
            &[],
        )),
        is_overflow,
        &["a.npy"],
    );
    refused(
        p(&raw(1, &dict("<f4", false, "(18446744073709551616,)"), &[])),
        is_parse,
        &[],
    );
    refused(p(&raw(1, &dict("<f4", false, "(-2,)"), &[])), is_parse, &[]);
    let many = format!("({})", vec!["1"; 65].join(", "));
    refused(
        p(&raw(1, &dict("<f4", false, &many), &[0; 4])),
        is_parse,
        &["dimensions"],
    );
    refused(
        p(&raw(1, "{'descr': '<f4', 'shape': (1,), }", &[0; 4])),
        is_parse,
        &["fortran_order"],
    );
    refused(p(&raw(1, "\u{e9}", &[])), is_parse, &["ASCII"]);
    refused(p(&raw(3, "\u{e9}", &[])), is_parse, &[]);
    // Typed conversions.
    let ints = p(&raw(
        1,
        &dict("<i8", false, "(2,)"),
        &[[3u8, 0, 0, 0, 0, 0, 0, 0], [0xff; 8]].concat(),
    ))
    .unwrap();
    refused(ints.clone().into_f32("x"), is_dtype, &["int64"]);
    refused(ints.into_lengths("lengths"), is_arg, &["lengths[1] = -1"]);
    let floats = p(&raw(1, &dict("<f4", false, "(1,)"), &[0; 4])).unwrap();
    refused(floats.into_lengths("lengths"), is_dtype, &["float32"]);
    // Reading a file that is not there, or a directory.
    refused(
        npy::read("/nonexistent/a.npy"),
        |e| matches!(e, Error::Io { .. }),
        &["/nonexistent/a.npy"],
    );
    refused(
        npy::read(std::env::temp_dir()),
        |e| matches!(e, Error::Io { .. }),
        &[],
    );
    // Writing: mismatched element count, a path that is not a file.
    refused(npy::to_bytes_f32(&[2, 2], &[0.0; 3]), is_shape, &[]);
    refused(npy::to_bytes_f32(&[usize::MAX, 2], &[]), is_overflow, &[]);
    refused(npy::write_f32("", &[1], &[0.0]), is_arg, &[]);
}
