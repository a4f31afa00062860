//! Fashion-MNIST from Debian's `dataset-fashion-mnist` (gzipped IDX files), copied gunzipped
//! and verified into `DIR/fashion-mnist/`.

use std::io::Read;
use std::path::Path;

use super::digest::md5_hex;
use super::{install, read, DataError, ImageSet, Normalisation, Obtained, Splits};

pub const SUBDIR: &str = "fashion-mnist";
pub const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
const FIX: &str = "skfac data fashion-mnist";

/// The four IDX files and the MD5 of each once gunzipped.
pub const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    (
        "train-labels-idx1-ubyte",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
    ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
];

pub const MEAN: [f32; 1] = [0.2860];
pub const STD: [f32; 1] = [0.3530];

/// Copies and verifies the IDX files from `source` (default: Debian's install folder).
pub fn obtain(dir: &Path, source: Option<&Path>) -> Result<Obtained, DataError> {
    let out = dir.join(SUBDIR);
    if verify_dir(&out).is_ok() {
        return Ok(Obtained::AlreadyPresent(out));
    }
    let src = source.unwrap_or(Path::new(SYSTEM_DIR));
    let mut files = Vec::new();
    for (name, md5) in FILES {
        let gz = src.join(format!("{name}.gz"));
        if !gz.exists() {
            return Err(DataError::Obtain(format!(
                "{} not found: install Debian's package with `apt-get install dataset-fashion-mnist`",
                gz.display()
            )));
        }
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(read(&gz)?.as_slice())
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::Corrupt {
                file: gz.clone(),
                why: e.to_string(),
                fix: "apt-get install --reinstall dataset-fashion-mnist".into(),
            })?;
        let got = md5_hex(&bytes);
        if got != md5 {
            return Err(DataError::Corrupt {
                file: gz,
                why: format!("MD5 after gunzip is {got}, expected {md5}"),
                fix: "apt-get install --reinstall dataset-fashion-mnist".into(),
            });
        }
        files.push((name, bytes));
    }
    let listing: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    install(&out, &listing)?;
    verify_dir(&out)?;
    Ok(Obtained::Written(out))
}

/// Checks the copied files' MD5s and that each split has its published class balance.
pub fn verify_dir(out: &Path) -> Result<(), DataError> {
    for (name, md5) in FILES {
        let path = out.join(name);
        let got = md5_hex(&read(&path)?);
        if got != md5 {
            return Err(DataError::Corrupt {
                file: path,
                why: format!("MD5 {got}, expected {md5}"),
                fix: FIX.into(),
            });
        }
    }
    let s = load(out.parent().unwrap_or(Path::new(".")))?;
    for (set, per_class) in [(&s.train, 6000), (&s.test, 1000)] {
        if set.class_counts() != vec![per_class; 10] {
            return Err(DataError::Corrupt {
                file: out.to_path_buf(),
                why: format!("class counts {:?}", set.class_counts()),
                fix: FIX.into(),
            });
        }
    }
    Ok(())
}

/// Parses an IDX file with the given magic, returning its dimensions and payload.
pub fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let corrupt = |why: String| DataError::Corrupt {
        file: path.to_path_buf(),
        why,
        fix: FIX.into(),
    };
    let be = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let got = be(0).ok_or_else(|| corrupt("shorter than an IDX header".into()))?;
    if got != magic {
        return Err(corrupt(format!("IDX magic {got:#x}, expected {magic:#x}")));
    }
    let ndim = (magic & 0xff) as usize;
    let dims: Vec<usize> = (0..ndim)
        .map(|i| be(4 + 4 * i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt("truncated IDX header".into()))?;
    if dims.contains(&0) {
        return Err(corrupt(format!(
            "IDX header has a zero dimension: {dims:?}"
        )));
    }
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| corrupt(format!("IDX dimensions {dims:?} overflow")))?;
    let payload = &bytes[4 + 4 * ndim..];
    if payload.len() != n {
        return Err(corrupt(format!(
            "{} data bytes, header says {n}",
            payload.len()
        )));
    }
    Ok((dims, payload))
}

fn load_split(out: &Path, images: &str, labels: &str) -> Result<ImageSet, DataError> {
    let ipath = out.join(images);
    let lpath = out.join(labels);
    let ibytes = read(&ipath)?;
    let lbytes = read(&lpath)?;
    let (idims, ipix) = parse_idx(&ipath, &ibytes, 0x0803)?;
    let (ldims, lab) = parse_idx(&lpath, &lbytes, 0x0801)?;
    if idims[0] != ldims[0] || lab.iter().any(|&l| l > 9) {
        return Err(DataError::Corrupt {
            file: lpath,
            why: format!("{} labels (each 0-9) for {} images", ldims[0], idims[0]),
            fix: FIX.into(),
        });
    }
    Ok(ImageSet {
        images: ipix.to_vec(),
        labels: lab.to_vec(),
        height: idims[1],
        width: idims[2],
        channels: 1,
        classes: 10,
    })
}

/// Reads `dir/fashion-mnist/` (any number of images, so tests can write small files).
pub fn load(dir: &Path) -> Result<Splits, DataError> {
    let out = dir.join(SUBDIR);
    if !out.join(FILES[0].0).exists() {
        return Err(DataError::Missing {
            what: "Fashion-MNIST",
            dir: out,
            fix: format!("{FIX} --dir {}", dir.display()),
        });
    }
    Ok(Splits {
        name: "fashion-mnist",
        train: load_split(&out, FILES[0].0, FILES[1].0)?,
        test: load_split(&out, FILES[2].0, FILES[3].0)?,
        norm: Normalisation {
            mean: MEAN.to_vec(),
            std: STD.to_vec(),
        },
        augment: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_idx_files_written_by_the_test() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(SUBDIR);
        std::fs::create_dir_all(&out).unwrap();
        let pixels: Vec<u8> = (0..2 * 28 * 28).map(|i| (i % 256) as u8).collect();
        for (img, lab) in [(FILES[0].0, FILES[1].0), (FILES[2].0, FILES[3].0)] {
            std::fs::write(out.join(img), idx(0x0803, &[2, 28, 28], &pixels)).unwrap();
            std::fs::write(out.join(lab), idx(0x0801, &[2], &[3, 7])).unwrap();
        }
        let s = load(dir.path()).unwrap();
        assert_eq!(
            (
                s.train.len(),
                s.train.height,
                s.train.width,
                s.train.channels
            ),
            (2, 28, 28, 1)
        );
        assert_eq!(s.train.labels, vec![3, 7]);
        assert_eq!(s.train.image(1)[0], (784 % 256) as u8);
        // A truncated file is reported as corrupt, naming the fix.
        std::fs::write(
            out.join(FILES[0].0),
            idx(0x0803, &[2, 28, 28], &pixels[..100]),
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("corrupt") && err.contains(FIX), "{err}");
    }

    #[test]
    fn a_missing_system_package_names_the_apt_package() {
        let dir = tempfile::tempdir().unwrap();
        let err = obtain(dir.path(), Some(&dir.path().join("nowhere")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("apt-get install dataset-fashion-mnist"),
            "{err}"
        );
    }
}
