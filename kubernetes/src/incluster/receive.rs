//! `t2 pod receive --bytes N --sha256 H`: the pod's end of direct delivery. It reads exactly
//! N bytes from stdin (the launcher's exec stream) into a temporary file beside the package
//! path, checks the size and sha256, moves the file into place atomically, and prints
//! `received H`. The init container, which waits for that path, then finishes.

use std::path::Path;

use sha2::{Digest, Sha256};
use t2_core::package::landing::Landing;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::deliver::direct::received_line;

/// Receives the package from `input` into `dest`.
pub async fn receive(
    bytes: u64,
    sha256: &str,
    mut input: impl AsyncRead + Unpin,
    dest: &Path,
) -> Result<String, String> {
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("--sha256 {sha256} is not a sha256 (64 hex digits)"));
    }
    let mut landing = Landing::open(dest, "receiving", bytes, sha256)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    while landing.received() < bytes {
        let left = bytes - landing.received();
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = input.read(&mut buf[..want]).await.map_err(|e| {
            format!(
                "reading the package failed after {} of {bytes} bytes: {e}",
                landing.received()
            )
        })?;
        if n == 0 {
            break; // finish names the shortfall
        }
        landing.write(&buf[..n]).await.map_err(|e| e.to_string())?;
    }
    landing.finish().await.map_err(|e| e.to_string())?;
    Ok(received_line(&sha256.to_ascii_lowercase()))
}

/// The sha256 of file `path`, hex.
pub async fn file_sha256(path: &Path) -> Result<String, String> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            return Ok(hex::encode(hash.finalize()));
        }
        hash.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[tokio::test]
    async fn exact_bytes_verified_and_moved_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("package/package.tar.gz");
        let data = b"0123456789".repeat(50_000);
        let line = receive(data.len() as u64, &sha(&data), &data[..], &dest)
            .await
            .unwrap();
        assert_eq!(line, format!("received {}", sha(&data)));
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(file_sha256(&dest).await.unwrap(), sha(&data));
    }

    #[tokio::test]
    async fn short_or_damaged_packages_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("p.tar.gz");
        let data = b"abcdef".to_vec();
        let e = receive(10, &sha(&data), &data[..], &dest)
            .await
            .unwrap_err();
        assert_eq!(e, "the stream ended after 6 of 10 bytes");
        let e = receive(6, &sha(b"other!"), &data[..], &dest)
            .await
            .unwrap_err();
        assert!(e.starts_with("the package arrived damaged: sha256 "), "{e}");
        assert!(receive(6, "xyz", &data[..], &dest)
            .await
            .unwrap_err()
            .contains("is not a sha256"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
    }
}
