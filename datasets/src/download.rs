//! Download of the standard forecasting datasets from pinned GitHub raw URLs: the ETT-small CSVs
//! from upstream, and the Autoformer/Time-Series-Library files (Weather, Exchange, ILI,
//! Electricity, Traffic) from a repository that commits them (../shared/datasets/README.md lists
//! the URLs and the checksums known).
//!
//! A file is streamed into `<name>.part` beside its destination while it is hashed. A file with a
//! known SHA-256 is renamed into place only if it matches, so a failed or corrupted download never
//! leaves a partial or wrong file where a loader would find it. A file whose checksum is not known
//! (Electricity, Traffic) is kept, its SHA-256 recorded beside it (`<file>.sha256`, `sha256sum`
//! format) and reported as unverified.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// zhouhaoyi/ETDataset at the commit the checksums were taken from
/// (../shared/datasets/README.md: `1d16c8f4`, 2021-06-04).
pub const ETT_BASE_URL: &str = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/1d16c8f4f943005d613b5bc962e9eeb06058cf07";

/// Xieyyyy/NEMoTS at `0f58be8b`, whose `dataset/` folder commits the Autoformer/TSLib CSVs in
/// their layout (the blobs ../shared/datasets/README.md identifies).
pub const TSLIB_BASE_URL: &str = "https://raw.githubusercontent.com/Xieyyyy/NEMoTS/0f58be8b0f77af83112592831b93efa728d0e929/dataset";

/// One file to fetch: its path below the base URL and the data folder, and its SHA-256 if known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path below the base URL, also the path below the destination folder.
    pub path: &'static str,
    /// Lower-case hex SHA-256 of the exact bytes; `None` where no checksum is known.
    pub sha256: Option<&'static str>,
}

/// The four ETT-small files (SHA256SUMS of ../shared/datasets).
pub const ETT_FILES: [RemoteFile; 4] = [
    RemoteFile {
        path: "ETT-small/ETTh1.csv",
        sha256: Some("f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),
    },
    RemoteFile {
        path: "ETT-small/ETTh2.csv",
        sha256: Some("a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b"),
    },
    RemoteFile {
        path: "ETT-small/ETTm1.csv",
        sha256: Some("6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e"),
    },
    RemoteFile {
        path: "ETT-small/ETTm2.csv",
        sha256: Some("db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd"),
    },
];

/// A set of files `data download` fetches together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bundle {
    /// ETTh1, ETTh2, ETTm1, ETTm2 (CC BY-ND 4.0).
    Ett,
    /// Jena weather, 21 columns, 10-minute steps.
    Weather,
    /// Daily exchange rates of 8 countries.
    ExchangeRate,
    /// Weekly influenza-like illness (ILI).
    Illness,
    /// Hourly consumption of 321 clients (ECL); no checksum known.
    Electricity,
    /// Hourly occupancy of 862 road sensors; no checksum known.
    Traffic,
}

impl Bundle {
    /// The pinned URL the files' paths are relative to.
    pub fn base_url(self) -> &'static str {
        match self {
            Self::Ett => ETT_BASE_URL,
            _ => TSLIB_BASE_URL,
        }
    }

    /// The files, each with its SHA-256 where one is known.
    pub fn files(self) -> &'static [RemoteFile] {
        const fn file(path: &'static str, sha256: Option<&'static str>) -> RemoteFile {
            RemoteFile { path, sha256 }
        }
        const WEATHER: [RemoteFile; 1] = [file(
            "weather/weather.csv",
            Some("9b2b19b13e342d9c9b9c51620d42b4be232df7fba30e7f5c4968b7c79ab138ad"),
        )];
        const EXCHANGE: [RemoteFile; 1] = [file(
            "exchange_rate/exchange_rate.csv",
            Some("d55e7aa2641009814a18ba3279431b13f6d413b0eab195b9ff21988d8cf94e97"),
        )];
        const ILLNESS: [RemoteFile; 1] = [file(
            "illness/national_illness.csv",
            Some("8594cecb98c6f2f9dc014eca11c4d5d1e38ad5ce6ed0592d4abe65b146fce395"),
        )];
        const ELECTRICITY: [RemoteFile; 1] = [file("electricity/electricity.csv", None)];
        const TRAFFIC: [RemoteFile; 1] = [file("traffic/traffic.csv", None)];
        match self {
            Self::Ett => &ETT_FILES,
            Self::Weather => &WEATHER,
            Self::ExchangeRate => &EXCHANGE,
            Self::Illness => &ILLNESS,
            Self::Electricity => &ELECTRICITY,
            Self::Traffic => &TRAFFIC,
        }
    }
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded; `bytes` written; `verified` when its checksum was known and matched (an
    /// unknown one is recorded in `<file>.sha256`).
    Downloaded {
        /// Where it now is.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// Its SHA-256.
        sha256: String,
        /// Checked against a known checksum.
        verified: bool,
    },
    /// Already present (with the right checksum, when one is known); left untouched.
    AlreadyPresent {
        /// Where it is.
        path: PathBuf,
        /// Checked against a known checksum.
        verified: bool,
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

/// Fetch `files` from `base_url` into `dir`, skipping files already present (with the right
/// checksum, when one is known). Stops at the first failure; files fetched before it stay.
pub fn download_all(base_url: &str, files: &[RemoteFile], dir: &Path) -> Result<Vec<Fetched>> {
    files
        .iter()
        .map(|file| {
            let dest = dir.join(file.path);
            if dest.exists() {
                match file.sha256 {
                    Some(known) if sha256_file(&dest)? == known => {
                        return Ok(Fetched::AlreadyPresent {
                            path: dest,
                            verified: true,
                        });
                    }
                    Some(_) => {} // a wrong or damaged copy: fetch it again
                    None => {
                        return Ok(Fetched::AlreadyPresent {
                            path: dest,
                            verified: false,
                        });
                    }
                }
            }
            let url = format!("{}/{}", base_url.trim_end_matches('/'), file.path);
            let (bytes, sha256) = download_verified(&url, file.sha256, &dest)?;
            if file.sha256.is_none() {
                let record = checksum_record(&dest);
                let name = dest
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                std::fs::write(&record, format!("{sha256}  {name}\n")).map_err(|source| {
                    DataError::Io {
                        path: record.clone(),
                        source,
                    }
                })?;
            }
            Ok(Fetched::Downloaded {
                path: dest,
                bytes,
                sha256,
                verified: file.sha256.is_some(),
            })
        })
        .collect()
}

/// Where the SHA-256 of a file without a known checksum is recorded: `<file>.sha256`.
pub fn checksum_record(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".sha256");
    PathBuf::from(name)
}

/// Largest file accepted (Traffic is ~130 MB).
const MAX_BYTES: u64 = 1 << 30;

/// Stream `url` into `dest`, verifying its SHA-256 against `sha256` (when known) before the file
/// appears; returns the bytes written and the SHA-256.
pub fn download_verified(url: &str, sha256: Option<&str>, dest: &Path) -> Result<(u64, String)> {
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
        if let Some(expected) = sha256
            && actual != expected
        {
            return Err(DataError::Checksum {
                url: url.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
        std::fs::rename(&part, dest).map_err(io_error(dest))?;
        Ok((total, actual))
    })();
    if result.is_err() {
        // Never leave a partial or unverified file behind.
        let _ = std::fs::remove_file(&part);
    }
    result
}
