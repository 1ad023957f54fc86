//! A package arriving in pieces (an exec stream, a worker's offer, the job master's copy): it
//! is written to a temporary file beside its final path, counted against the size it must
//! have and hashed on the way, and moved into place atomically only when it is complete and
//! its sha256 is right, so a present package file is always the whole package. A landing
//! that fails or is dropped before [`Landing::finish`] removes its temporary file.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::io::AsyncWriteExt;

/// Why a landing did not give the package. The caller words it for its own reader.
#[derive(Debug, Error)]
pub enum LandingError {
    /// The file system refused (creating the folder or file, writing, moving into place).
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", "move the package to").
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// More bytes came than the package has.
    #[error("more than the package's {bytes} bytes arrived")]
    TooLong {
        /// The package's size.
        bytes: u64,
    },
    /// The stream ended before the package was complete.
    #[error("the stream ended after {got} of {bytes} bytes")]
    Short {
        /// Bytes that arrived.
        got: u64,
        /// The package's size.
        bytes: u64,
    },
    /// The whole package arrived with another sha256.
    #[error("the package arrived damaged: sha256 {got}, expected {expected}")]
    Damaged {
        /// The sha256 of what arrived.
        got: String,
        /// The package's sha256.
        expected: String,
    },
}

/// A package being written beside `dest` (see the module's doc).
pub struct Landing {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    hash: Sha256,
    got: u64,
    bytes: u64,
    sha256: String,
}

impl Landing {
    /// Starts a landing of a package of `bytes` bytes with hash `sha256` at `dest`: creates
    /// `dest`'s folder and the temporary file `.{tag}-{pid}` in it.
    pub async fn open(
        dest: &Path,
        tag: &str,
        bytes: u64,
        sha256: &str,
    ) -> Result<Self, LandingError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| LandingError::Io {
                what: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        let tmp = dir.join(format!(".{tag}-{}", std::process::id()));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|source| LandingError::Io {
                what: "create",
                path: tmp.clone(),
                source,
            })?;
        Ok(Self {
            dest: dest.to_path_buf(),
            tmp,
            file: Some(file),
            hash: Sha256::new(),
            got: 0,
            bytes,
            sha256: sha256.to_ascii_lowercase(),
        })
    }

    /// Bytes written so far.
    pub fn received(&self) -> u64 {
        self.got
    }

    /// Writes the next piece; refuses one that would make the package longer than it is.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), LandingError> {
        self.got += data.len() as u64;
        if self.got > self.bytes {
            return Err(LandingError::TooLong { bytes: self.bytes });
        }
        self.hash.update(data);
        let file = self.file.as_mut().ok_or_else(|| LandingError::Io {
            what: "write",
            path: self.tmp.clone(),
            source: std::io::Error::other("the landing is closed"),
        })?;
        file.write_all(data)
            .await
            .map_err(|source| LandingError::Io {
                what: "write",
                path: self.tmp.clone(),
                source,
            })
    }

    /// Checks the size and sha256 of what arrived and moves it into place.
    pub async fn finish(mut self) -> Result<(), LandingError> {
        if self.got != self.bytes {
            return Err(LandingError::Short {
                got: self.got,
                bytes: self.bytes,
            });
        }
        if let Some(file) = self.file.take() {
            file.sync_all().await.map_err(|source| LandingError::Io {
                what: "write",
                path: self.tmp.clone(),
                source,
            })?;
        }
        let got = hex::encode(std::mem::take(&mut self.hash).finalize());
        if got != self.sha256 {
            return Err(LandingError::Damaged {
                got,
                expected: self.sha256.clone(),
            });
        }
        tokio::fs::rename(&self.tmp, &self.dest)
            .await
            .map_err(|source| LandingError::Io {
                what: "move the package to",
                path: self.dest.clone(),
                source,
            })?;
        // Moved: nothing for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_whole_right_package_is_moved_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/p.tar.gz");
        let data = b"0123456789".repeat(1000);
        let mut landing = Landing::open(&dest, "t", data.len() as u64, &sha(&data).to_uppercase())
            .await
            .unwrap();
        for piece in data.chunks(333) {
            landing.write(piece).await.unwrap();
        }
        assert_eq!(landing.received(), data.len() as u64);
        landing.finish().await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(leftovers(dest.parent().unwrap()), vec!["p.tar.gz"]);
    }

    #[tokio::test]
    async fn long_short_and_damaged_packages_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("p.tar.gz");
        let data = b"abcdef".to_vec();

        let mut long = Landing::open(&dest, "t", 3, &sha(&data)).await.unwrap();
        let err = long.write(&data).await.unwrap_err();
        assert!(matches!(err, LandingError::TooLong { bytes: 3 }), "{err}");
        drop(long);

        let mut short = Landing::open(&dest, "t", 10, &sha(&data)).await.unwrap();
        short.write(&data).await.unwrap();
        let err = short.finish().await.unwrap_err();
        assert!(
            matches!(err, LandingError::Short { got: 6, bytes: 10 }),
            "{err}"
        );

        let mut damaged = Landing::open(&dest, "t", 6, &sha(b"other!")).await.unwrap();
        damaged.write(&data).await.unwrap();
        let err = damaged.finish().await.unwrap_err();
        assert!(matches!(err, LandingError::Damaged { .. }), "{err}");

        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }
}
