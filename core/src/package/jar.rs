//! Reading a `.jar`'s `META-INF/MANIFEST.MF` (a zip entry, stored or deflated) to learn its
//! `Main-Class`, so that `t2 submit job.jar` can say at once that it needs `--class`.
//! The jar is untrusted: every offset and size is checked, and at most 1 MiB is inflated.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What a jar's manifest says about its entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainClass {
    /// `Main-Class: NAME`.
    Named(String),
    /// A manifest without `Main-Class`, or no manifest at all.
    Missing,
    /// The file could not be read as a plain zip (zip64, damaged…): nothing is claimed.
    Unknown,
}

/// The manifest path inside a jar.
const MANIFEST: &[u8] = b"META-INF/MANIFEST.MF";
/// Largest manifest read.
const MAX_MANIFEST: u64 = 1 << 20;
/// End-of-central-directory record: fixed part, and the longest comment after it.
const EOCD_LEN: u64 = 22;
const MAX_COMMENT: u64 = 0xFFFF;

/// The `Main-Class` of the jar at `path`.
pub fn main_class(path: &Path) -> MainClass {
    read_manifest(path)
        .map(|m| match m {
            Some(text) => parse_main_class(&text).map_or(MainClass::Missing, MainClass::Named),
            None => MainClass::Missing,
        })
        .unwrap_or(MainClass::Unknown)
}

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as u64)
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}

/// The manifest's text; `Ok(None)` when the jar has none; `Err` when it is no plain zip.
fn read_manifest(path: &Path) -> Result<Option<String>, ()> {
    let mut f = std::fs::File::open(path).map_err(drop)?;
    let len = f.metadata().map_err(drop)?.len();
    let tail_len = len.min(EOCD_LEN + MAX_COMMENT);
    f.seek(SeekFrom::Start(len - tail_len)).map_err(drop)?;
    let mut tail = vec![0u8; tail_len as usize];
    f.read_exact(&mut tail).map_err(drop)?;
    let eocd = (0..tail.len().saturating_sub(EOCD_LEN as usize - 1))
        .rev()
        .find(|&i| tail[i..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
        .ok_or(())?;
    let e = &tail[eocd..];
    let (entries, cd_size, cd_offset) = (
        u16_at(e, 10).ok_or(())?,
        u32_at(e, 12).ok_or(())?,
        u32_at(e, 16).ok_or(())?,
    );
    if entries == 0xFFFF || cd_offset == 0xFFFF_FFFF || cd_offset + cd_size > len {
        return Err(()); // zip64 or damaged
    }
    f.seek(SeekFrom::Start(cd_offset)).map_err(drop)?;
    let mut cd = vec![0u8; cd_size as usize];
    f.read_exact(&mut cd).map_err(drop)?;
    let mut at = 0usize;
    for _ in 0..entries {
        if !cd
            .get(at..)
            .ok_or(())?
            .starts_with(&[0x50, 0x4b, 0x01, 0x02])
        {
            return Err(());
        }
        let method = u16_at(&cd, at + 10).ok_or(())?;
        let packed = u32_at(&cd, at + 20).ok_or(())?;
        let name_len = u16_at(&cd, at + 28).ok_or(())? as usize;
        let extra_len = u16_at(&cd, at + 30).ok_or(())? as usize;
        let comment_len = u16_at(&cd, at + 32).ok_or(())? as usize;
        let local = u32_at(&cd, at + 42).ok_or(())?;
        let name = cd.get(at + 46..at + 46 + name_len).ok_or(())?;
        if name.eq_ignore_ascii_case(MANIFEST) {
            return read_entry(&mut f, len, local, packed, method).map(Some);
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(None)
}

/// The text of the entry whose local header is at `local`.
fn read_entry(
    f: &mut std::fs::File,
    len: u64,
    local: u64,
    packed: u64,
    method: u64,
) -> Result<String, ()> {
    if packed > MAX_MANIFEST || local + 30 > len {
        return Err(());
    }
    f.seek(SeekFrom::Start(local)).map_err(drop)?;
    let mut header = [0u8; 30];
    f.read_exact(&mut header).map_err(drop)?;
    if !header.starts_with(&[0x50, 0x4b, 0x03, 0x04]) {
        return Err(());
    }
    let skip = u16_at(&header, 26).ok_or(())? + u16_at(&header, 28).ok_or(())?;
    f.seek(SeekFrom::Current(skip as i64)).map_err(drop)?;
    let data = f.take(packed);
    let mut out = Vec::new();
    match method {
        0 => data.take(MAX_MANIFEST).read_to_end(&mut out),
        8 => flate2::read::DeflateDecoder::new(data)
            .take(MAX_MANIFEST)
            .read_to_end(&mut out),
        _ => return Err(()),
    }
    .map_err(drop)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `Main-Class` of a manifest (header names are case-insensitive; a line starting with a
/// space continues the one before).
fn parse_main_class(text: &str) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        if let (Some(more), Some(last)) = (line.strip_prefix(' '), lines.last_mut()) {
            last.push_str(more);
            continue;
        }
        lines.push(line.to_string());
    }
    lines.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        (k.trim().eq_ignore_ascii_case("Main-Class") && !v.is_empty()).then(|| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lines() {
        assert_eq!(
            parse_main_class("Manifest-Version: 1.0\r\nmain-class: org.ex\r\n ample.Main\r\n"),
            Some("org.example.Main".into())
        );
        assert_eq!(parse_main_class("Manifest-Version: 1.0\r\n\r\n"), None);
    }

    #[test]
    fn not_a_zip_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jar");
        std::fs::write(&p, b"not a zip at all, just some bytes......").unwrap();
        assert_eq!(main_class(&p), MainClass::Unknown);
    }
}
