//! Deterministic workloads for `make bench`: the same arguments always give
//! the same tree, byte for byte (splitmix64 from `--seed` and the file's
//! index), so every run and every tool moves the same data.
//!
//! File `i` lands in `depth` levels of directories, `per-dir` files to a
//! leaf directory and `fanout` directories to a level:
//! `--files 1000 --per-dir 10 --fanout 10 --depth 2` gives
//! `d0/d0/f000000.bin … d9/d9/f000999.bin`: 1000 files in a 3-level tree.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use artifact_bench_server::{die, Args};

const USAGE: &str = "usage: bench-gen --out DIR --files N --size BYTES|MIN:MAX \
[--per-dir P] [--fanout F] [--depth D] [--seed S]

Writes N files under DIR (which must not exist). BYTES may end in K, M or G
(powers of 1024); MIN:MAX draws each file's size from --seed.";

fn main() {
    let args = Args::parse(USAGE, &[]);
    args.only(&["out", "files", "size", "per-dir", "fanout", "depth", "seed"]);
    let out = PathBuf::from(args.req("out"));
    let files: u64 = args.num("files", 1);
    let (min, max) = match args.req("size").split_once(':') {
        Some((a, b)) => (bytes(a), bytes(b)),
        None => {
            let s = bytes(&args.req("size"));
            (s, s)
        }
    };
    if min > max {
        die(USAGE, "--size MIN:MAX with MIN > MAX");
    }
    let per_dir: u64 = args.num("per-dir", files.max(1));
    let fanout: u64 = args.num("fanout", 10);
    let depth: u32 = args.num("depth", 0);
    let seed: u64 = args.num("seed", 5);
    if out.exists() {
        die(USAGE, &format!("{} exists already", out.display()));
    }
    fs::create_dir_all(&out).expect("create --out");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    for i in 0..files {
        let mut rng = SplitMix(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let size = if max == min {
            min
        } else {
            min + rng.next() % (max - min + 1)
        };
        let path = file_path(&out, i, per_dir.max(1), fanout.max(1), depth);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create directory");
        }
        let mut w =
            BufWriter::with_capacity(1 << 20, fs::File::create(&path).expect("create file"));
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            for chunk in buf[..n].chunks_mut(8) {
                let v = rng.next().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            w.write_all(&buf[..n]).expect("write");
            left -= n as u64;
        }
        w.flush().expect("flush");
        total += size;
    }
    println!("{files} files, {total} bytes in {}", out.display());
}

fn file_path(out: &Path, i: u64, per_dir: u64, fanout: u64, depth: u32) -> PathBuf {
    let mut dirs = Vec::new();
    let mut leaf = i / per_dir;
    for _ in 0..depth {
        dirs.push(leaf % fanout);
        leaf /= fanout;
    }
    let mut p = out.to_path_buf();
    for d in dirs.iter().rev() {
        p.push(format!("d{d}"));
    }
    p.push(format!("f{i:06}.bin"));
    p
}

fn bytes(s: &str) -> u64 {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .unwrap_or_else(|_| die(USAGE, &format!("bad size {s:?}")))
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
