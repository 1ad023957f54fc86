//! Unit tests of job-name sanitising and job IDs.

use super::*;

fn sanitized(raw: &str) -> SanitizedName {
    sanitize_job_name(raw).expect("usable name")
}

#[test]
fn documented_example() {
    let s = sanitized("My_Job.Name!!");
    assert_eq!(s.name, "my-job-name");
    assert!(s.changed);
}

#[test]
fn already_valid_is_unchanged() {
    for raw in ["pi", "word-count", "a1", "job-2024-x"] {
        let s = sanitized(raw);
        assert_eq!(s.name, raw);
        assert!(!s.changed, "{raw}");
    }
}

#[test]
fn empty_and_all_invalid_are_unusable() {
    for raw in ["", "!!!", "___", "123", "-9-", "日本語", "\n"] {
        let err = sanitize_job_name(raw).unwrap_err();
        assert!(matches!(err, NameError::Unusable { .. }), "{raw}");
        assert_eq!(err.to_string().lines().count(), 1);
    }
}

#[test]
fn leading_digits_and_dashes_are_dropped() {
    assert_eq!(sanitized("42-answer").name, "answer");
    assert_eq!(sanitized("--_.x").name, "x");
    assert_eq!(sanitized("9lives").name, "lives");
}

#[test]
fn runs_of_dashes_collapse_and_trailing_are_trimmed() {
    assert_eq!(sanitized("a__b..c--d").name, "a-b-c-d");
    assert_eq!(sanitized("job-_-").name, "job");
    assert_eq!(sanitized("a b c").name, "abc");
}

#[test]
fn trailing_dash_after_truncation_is_trimmed() {
    // 29 letters then '-' then more: truncation to 30 leaves a trailing '-'.
    let raw = format!("{}-tail", "a".repeat(29));
    let s = sanitized(&raw);
    assert_eq!(s.name, "a".repeat(29));
    assert!(s.changed);
}

#[test]
fn hundred_characters_are_truncated_to_thirty() {
    let raw = "abcdefghij".repeat(10);
    let s = sanitized(&raw);
    assert_eq!(s.name.len(), MAX_NAME_LEN);
    assert_eq!(s.name, "abcdefghij".repeat(3));
    assert!(s.changed);
}

#[test]
fn unicode_letters_are_dropped() {
    assert_eq!(sanitized("Café_Über").name, "caf-ber");
    assert_eq!(sanitized("жjobж").name, "job");
    // The Kelvin sign lowercases to 'k' in Unicode, but it is not ASCII: dropped.
    assert_eq!(sanitized("\u{212a}ey").name, "ey");
}

#[test]
fn sanitized_names_are_labels_and_idempotent() {
    for raw in ["My_Job.Name!!", "x", "ÀÉ-b-9", &"Z-".repeat(40)] {
        let s = sanitized(raw);
        assert!(is_dns1123_label(&s.name), "{raw} -> {}", s.name);
        assert!(s.name.len() <= MAX_NAME_LEN);
        let again = sanitized(&s.name);
        assert_eq!(again.name, s.name);
        assert!(!again.changed);
    }
}

#[test]
fn job_ids_have_a_random_suffix() {
    let a = new_job_id("pi");
    let b = new_job_id("pi");
    assert_ne!(a, b);
    let suffix = a.strip_prefix("pi-").expect("name prefix");
    assert_eq!(suffix.len(), SUFFIX_LEN);
    assert!(suffix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    validate_job_id(&a).expect("new IDs are valid");
}

#[test]
fn maximal_ids_with_derived_suffixes_stay_labels() {
    let name = sanitized(&"n".repeat(100)).name;
    let id = new_job_id(&name);
    assert_eq!(id.len(), MAX_JOB_ID_LEN);
    validate_job_id(&id).expect("valid");
    for suffix in ["-jm", "-jm-0", "-uploader", "-token", "-0"] {
        let derived = format!("{id}{suffix}");
        assert!(is_dns1123_label(&derived), "{derived}");
    }
    for n in 1..=20 {
        let derived = format!("{id}-{}", "x".repeat(n - 1));
        let derived = derived.trim_end_matches('-');
        assert!(derived.len() <= MAX_DNS1123_LABEL_LEN, "{derived}");
        assert!(is_dns1123_label(derived), "{derived}");
    }
}

#[test]
fn user_job_ids_are_validated() {
    validate_job_id("pi-abc12345").expect("valid");
    let why = |id: &str| match validate_job_id(id).unwrap_err() {
        NameError::InvalidJobId { why, .. } => why,
        other => panic!("unexpected {other}"),
    };
    assert!(why("").contains("empty"));
    assert!(why("../etc").contains("'.' is not allowed"));
    assert!(why("Pi-abc").contains("'P' is not allowed"));
    assert!(why("1pi").contains("start with a lowercase letter"));
    assert!(why("pi-").contains("end with a letter or a digit"));
    assert!(why(&"a".repeat(40)).contains("over the limit of 39"));
    let err = validate_job_id("a\nb").unwrap_err();
    assert_eq!(err.to_string().lines().count(), 1, "{err}");
}

#[test]
fn dns1123_labels() {
    assert!(is_dns1123_label("a"));
    assert!(is_dns1123_label("0abc-9"));
    assert!(is_dns1123_label(&"a".repeat(63)));
    assert!(!is_dns1123_label(&"a".repeat(64)));
    assert!(!is_dns1123_label(""));
    assert!(!is_dns1123_label("-a"));
    assert!(!is_dns1123_label("a-"));
    assert!(!is_dns1123_label("a_b"));
    assert!(!is_dns1123_label("A"));
}
