//! Download of the ETT-small CSVs from their canonical GitHub raw URLs, pinned to the upstream
//! commit, each verified against its SHA-256 before it is moved into place.
//!
//! A file is streamed into `<name>.part` beside its destination while it is hashed; only a file
//! whose checksum matches is renamed into place, so a failed or corrupted download never leaves a
//! partial or wrong file where a loader would find it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// zhouhaoyi/ETDataset at the commit the checksums were taken from
/// (../shared/datasets/README.md: `1d16c8f4`, 2021-06-04).
pub const ETT_BASE_URL: &str = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/1d16c8f4f943005d613b5bc962e9eeb06058cf07";

/// One file to fetch: its path below the base URL and the data folder, and its SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path below the base URL, also the path below the destination folder.
    pub path: &'static str,
    /// Lower-case hex SHA-256 of the exact bytes.
    pub sha256: &'static str,
}

/// The four ETT-small files (SHA256SUMS of ../shared/datasets).
pub const ETT_FILES: [RemoteFile; 4] = [
    RemoteFile {
        path: "ETT-small/ETTh1.csv",
        sha256: "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    },
    RemoteFile {
        path: "ETT-small/ETTh2.csv",
        sha256: "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
    },
    RemoteFile {
        path: "ETT-small/ETTm1.csv",
        sha256: "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",
    },
    RemoteFile {
        path: "ETT-small/ETTm2.csv",
        sha256: "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd",
    },
];

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded and verified; `bytes` written.
    Downloaded {
        /// Where it now is.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// Already present with the right checksum; left untouched.
    AlreadyPresent {
        /// Where it is.
        path: PathBuf,
    },
}

/// SHA-256 of a file on disk, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Fetch `files` from `base_url` into `dir`, skipping files already present with the right
/// checksum. Stops at the first failure; files fetched before it stay in place.
pub fn download_all(base_url: &str, files: &[RemoteFile], dir: &Path) -> Result<Vec<Fetched>> {
    files
        .iter()
        .map(|file| {
            let dest = dir.join(file.path);
            if dest.exists() && sha256_file(&dest)? == file.sha256 {
                return Ok(Fetched::AlreadyPresent { path: dest });
            }
            let url = format!("{}/{}", base_url.trim_end_matches('/'), file.path);
            let bytes = download_verified(&url, file.sha256, &dest)?;
            Ok(Fetched::Downloaded { path: dest, bytes })
        })
        .collect()
}

/// Largest file accepted (the ETTm files are ~10 MB).
const MAX_BYTES: u64 = 1 << 30;

/// Stream `url` into `dest`, verifying its SHA-256 against `sha256` before the file appears.
pub fn download_verified(url: &str, sha256: &str, dest: &Path) -> Result<u64> {
    let download_error = |message: String| DataError::Download {
        url: url.to_string(),
        message,
    };
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let response = ureq::get(url)
        .call()
        .map_err(|e| download_error(e.to_string()))?;
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(MAX_BYTES)
        .reader();
    let part = dest.with_extension(format!(
        "{}.part",
        dest.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let result = (|| {
        let mut out = File::create(&part).map_err(io_error(&part))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| download_error(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_error(&part))?;
            total += n as u64;
        }
        out.sync_all().map_err(io_error(&part))?;
        let actual = format!("{:x}", hasher.finalize());
        if actual != sha256 {
            return Err(DataError::Checksum {
                url: url.to_string(),
                expected: sha256.to_string(),
                actual,
            });
        }
        std::fs::rename(&part, dest).map_err(io_error(dest))?;
        Ok(total)
    })();
    if result.is_err() {
        // Never leave a partial or unverified file behind.
        let _ = std::fs::remove_file(&part);
    }
    result
}
