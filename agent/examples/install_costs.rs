//! Costs the installer pays before or instead of writing (scripts/bench-patch):
//!
//! * `install_costs patch OLD NEW PATCH` — time to apply a normal BSDIFF40
//!   patch (made by `bsdiff`) to OLD, against hostile patches for the same
//!   output size built here: idle triples (bzip2 of zeros: the issue-15
//!   patch class), the densest triples the patcher accepts (one per
//!   `bsdiff::MIN_BYTES_PER_TRIPLE` bytes, each re-reading old bytes), and
//!   one-byte triples past that cap. Prints each time and its ratio to the
//!   normal patch (output to a sink: CPU only, as the bound is about CPU).
//! * `install_costs hash FILE` — SHA-256 of a whole payload, as the
//!   installer does for a local bundle before touching the inactive slot.

use std::io::{self, Cursor, Write};
use std::time::{Duration, Instant};

use ota_agent::bundle::bsdiff::{self, offtout, MAGIC};

fn bz(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A patch from `count` copies of one control triple, with diff and extra
/// blocks of `diff_len` / `extra_len` zero bytes.
fn patch(
    triple: (i64, i64, i64),
    count: u64,
    diff_len: u64,
    extra_len: u64,
    new_size: u64,
) -> Vec<u8> {
    let mut one = Vec::new();
    for v in [triple.0, triple.1, triple.2] {
        one.extend_from_slice(&offtout(v));
    }
    // Compress the control block streaming: it can be large.
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    let block: Vec<u8> = one.iter().copied().cycle().take(one.len() * 4096).collect();
    let mut left = count;
    while left > 0 {
        let n = left.min(4096);
        e.write_all(&block[..(n as usize) * one.len()]).unwrap();
        left -= n;
    }
    let ctrl = e.finish().unwrap();
    let diff = bz(&vec![0u8; diff_len as usize]);
    let extra = bz(&vec![0u8; extra_len as usize]);
    let mut out = MAGIC.to_vec();
    for v in [ctrl.len() as i64, diff.len() as i64, new_size as i64] {
        out.extend_from_slice(&offtout(v));
    }
    out.extend(ctrl);
    out.extend(diff);
    out.extend(extra);
    out
}

fn time_apply(patch: &[u8], old: &[u8]) -> (Duration, Result<u64, String>) {
    let t = Instant::now();
    let r = bsdiff::apply(patch, &mut Cursor::new(old), &mut io::sink()).map_err(|e| e.to_string());
    (t.elapsed(), r)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("patch") if args.len() == 5 => {
            let old = std::fs::read(&args[2]).unwrap();
            let new_size = std::fs::metadata(&args[3]).unwrap().len();
            let normal = std::fs::read(&args[4]).unwrap();
            let (base, r) = time_apply(&normal, &old);
            assert_eq!(r, Ok(new_size), "the normal patch must apply");
            println!(
                "normal patch: {} bytes → {new_size} bytes in {:.3} s",
                normal.len(),
                base.as_secs_f64()
            );
            let dense = bsdiff::max_triples(new_size) - 16;
            let per = bsdiff::MIN_BYTES_PER_TRIPLE as i64;
            let cases = [
                (
                    "idle triples (0,0,0), 10 M of them",
                    patch((0, 0, 0), 10_000_000, 0, 0, new_size),
                ),
                (
                    "densest accepted: (8,0,-8) × new_size/8",
                    patch((per, 0, -per), dense, new_size, 0, new_size),
                ),
                (
                    "one-byte triples (1,0,-1) past the cap",
                    patch((1, 0, -1), new_size, new_size, 0, new_size),
                ),
            ];
            for (name, p) in cases {
                let (t, r) = time_apply(&p, &old);
                let outcome = match r {
                    Ok(n) => format!("applied ({n} bytes)"),
                    Err(e) => format!("refused: {}", &e[..e.len().min(90)]),
                };
                println!(
                    "{name}: patch {} bytes, {:.3} s = {:.2} × normal; {outcome}",
                    p.len(),
                    t.as_secs_f64(),
                    t.as_secs_f64() / base.as_secs_f64()
                );
            }
        }
        Some("hash") if args.len() == 3 => {
            let t = Instant::now();
            let f = std::fs::File::open(&args[2]).unwrap();
            let blob = ota_agent::bundle::hash_reader(f).unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "pre-hash of {} bytes: {s:.3} s ({:.0} MiB/s)",
                blob.size,
                blob.size as f64 / (1 << 20) as f64 / s
            );
        }
        _ => {
            eprintln!("usage: install_costs patch OLD NEW PATCH | install_costs hash FILE");
            std::process::exit(2);
        }
    }
}
