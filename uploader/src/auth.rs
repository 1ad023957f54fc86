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

#[cfg(test)]
mod tests {
    use super::*;

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
