//! The dashboard token: reports and kill requests carry it as `Authorization: Bearer <token>`,
//! or as [`TOKEN_HEADER`] where a proxy drops `Authorization` (the Kubernetes API server's
//! service proxy does). Reads need no token.

use axum::http::{header, HeaderMap, StatusCode};

use crate::error::ApiError;

/// Header carrying the token where `Authorization` cannot.
pub const TOKEN_HEADER: &str = "x-t2-dashboard-token";

/// Checks the request's token: 401 when missing, 403 when wrong.
pub fn check(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let bearer = headers.get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
    });
    let plain = headers.get(TOKEN_HEADER).map(|v| v.to_str().unwrap_or(""));
    let Some(given) = bearer.or(plain).map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this needs the dashboard token: send 'Authorization: Bearer <token>'; nothing changed",
        ));
    };
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong dashboard token; nothing changed",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check(&h, "s3cret").unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(
            check(&h, "s3cret").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(check(&h, "s3cret").is_ok());
        let mut proxied = HeaderMap::new();
        proxied.insert(TOKEN_HEADER, "s3cret".parse().unwrap());
        assert!(check(&proxied, "s3cret").is_ok());
    }
}
