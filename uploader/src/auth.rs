//! The uploader token: who may write and delete. It comes from `--token`, `$T2_UPLOADER_TOKEN`
//! or `--token-file`; without one the uploader makes one and keeps it in `<dir>/uploader.token`
//! (mode 0600). Clients send it as `Authorization: Bearer <token>`. Reads need no token: a
//! package is only found by its sha256, which a reader must already know.

use std::path::{Path, PathBuf};

use axum::http::{header, HeaderMap};

use t2_core::secret::{constant_time_eq, Existing};

use crate::error::{ApiError, UploaderError};

/// Where the token came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Given on the command line or in the environment.
    Given,
    /// Read from a file.
    File(PathBuf),
    /// Made up and written to a file.
    Generated(PathBuf),
}

/// The token to use: `given`, else the content of `file`, else the one kept in `dir`
/// (made on first use).
pub fn resolve(
    given: Option<&str>,
    file: Option<&Path>,
    dir: &Path,
) -> Result<(String, TokenSource), UploaderError> {
    resolve_kept(given, file, &dir.join("uploader.token"))
}

/// The token to use: `given`, else the content of `file`, else the one kept in `kept`
/// (made on first use, mode 0600). The dashboard's token is made the same way.
pub fn resolve_kept(
    given: Option<&str>,
    file: Option<&Path>,
    kept: &Path,
) -> Result<(String, TokenSource), UploaderError> {
    if let Some(t) = given.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((t.to_string(), TokenSource::Given));
    }
    if let Some(f) = file {
        let t = read(f)?;
        return Ok((t, TokenSource::File(f.to_path_buf())));
    }
    if kept.is_file() {
        return Ok((read(kept)?, TokenSource::Generated(kept.to_path_buf())));
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_private(kept, &token)?;
    Ok((token, TokenSource::Generated(kept.to_path_buf())))
}

fn read(f: &Path) -> Result<String, UploaderError> {
    let t = std::fs::read_to_string(f).map_err(UploaderError::io(format!(
        "cannot read the token file {}",
        f.display()
    )))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(UploaderError::Config(format!(
            "the token file {} is empty",
            f.display()
        )));
    }
    Ok(t)
}

/// Writes `text` to a new file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> Result<(), UploaderError> {
    t2_core::secret::write_private(path, text, Existing::Replace).map_err(UploaderError::io(
        format!("cannot write {}", path.display()),
    ))
}

/// Header carrying the token where `Authorization` cannot: the Kubernetes API server's service
/// proxy strips `Authorization` from proxied requests (kubernetes#38775).
pub const TOKEN_HEADER: &str = "x-t2-uploader-token";

/// Checks the request's token (`Authorization: Bearer …`, or [`TOKEN_HEADER`]) against
/// `token`: 401 when missing, 403 when wrong.
pub fn check(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let bearer = headers.get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
    });
    let plain = headers.get(TOKEN_HEADER).map(|v| v.to_str().unwrap_or(""));
    let Some(given) = bearer.or(plain).map(str::trim) else {
        return Err(ApiError::unauthorized(
            "this needs the uploader token: send 'Authorization: Bearer <token>'; nothing changed",
        ));
    };
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::forbidden("wrong uploader token; nothing changed"))
    }
}

/// The key that lets job `job` renew and drop its own reference to package `sha256`, and
/// nothing else: HMAC-SHA256 of `<sha256>/<job>` under the uploader token, in hex. The
/// submitter, who has the token, makes it; the job (its Kubernetes job master) holds only
/// this key, so a job cannot upload, delete or pin any other package.
pub fn ref_key(token: &str, sha256: &str, job: &str) -> String {
    hex::encode(hmac_sha256(
        token.as_bytes(),
        format!("{sha256}/{job}").as_bytes(),
    ))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// [`check`] for what concerns only job `job`'s reference to package `sha256` (renewing it,
/// dropping it): the uploader token or that reference's [`ref_key`] will do.
pub fn check_ref(
    headers: &HeaderMap,
    token: &str,
    sha256: &str,
    job: &str,
) -> Result<(), ApiError> {
    match check(headers, token) {
        Err(e) if e.status.as_u16() == 403 => {
            let key = ref_key(token, sha256, job);
            check(headers, &key).map_err(|_| {
                ApiError::forbidden(
                    "wrong uploader token (or not this job's reference key); nothing changed",
                )
            })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_reference_key_opens_only_its_own_reference() {
        let key = ref_key("s3cret", "ab", "job-1");
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        assert!(check_ref(&h, "s3cret", "ab", "job-1").is_ok());
        assert_eq!(
            check_ref(&h, "s3cret", "ab", "job-2")
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert_eq!(
            check_ref(&h, "s3cret", "cd", "job-1")
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        assert_eq!(check(&h, "s3cret").unwrap_err().status.as_u16(), 403);
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(check_ref(&h, "s3cret", "ab", "job-2").is_ok());
        assert_eq!(
            check_ref(&HeaderMap::new(), "s3cret", "ab", "job-1")
                .unwrap_err()
                .status
                .as_u16(),
            401
        );
    }

    #[test]
    fn tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(check(&h, "s3cret").unwrap_err().status.as_u16(), 401);
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(check(&h, "s3cret").unwrap_err().status.as_u16(), 403);
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(check(&h, "s3cret").is_ok());
        let mut proxied = HeaderMap::new();
        proxied.insert(TOKEN_HEADER, "s3cret".parse().unwrap());
        assert!(check(&proxied, "s3cret").is_ok());
        proxied.insert(TOKEN_HEADER, "nope".parse().unwrap());
        assert_eq!(check(&proxied, "s3cret").unwrap_err().status.as_u16(), 403);
    }

    #[test]
    fn a_missing_token_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (t1, s1) = resolve(None, None, dir.path()).unwrap();
        let (t2, _) = resolve(None, None, dir.path()).unwrap();
        assert_eq!(t1, t2);
        let TokenSource::Generated(p) = s1 else {
            panic!("not generated")
        };
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(resolve(Some(" x "), None, dir.path()).unwrap().0, "x");
    }
}
