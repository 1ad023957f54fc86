//! A small YAML writer for JSON values that Kubernetes tools read back unchanged: every
//! string that a YAML 1.1 reader (kubectl's) could take for a number, boolean, null or
//! timestamp (`yes`, `on`, `0777`, `2025-01-02T03:04:05Z`) is quoted, multi-line text becomes
//! a literal block, and keys keep their (sorted) order, except that an object's
//! `apiVersion`, `kind` and `metadata` come first, as kubectl prints them.

use serde_json::Value;

/// `v` as a YAML document (without the leading `---`).
pub fn to_yaml_doc(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in kube_order(m) {
                out.push_str(&string(k, 0));
                out.push(':');
                value_after_key(&mut out, v, 0);
            }
        }
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (k, v) in m {
        pad(out, indent);
        out.push_str(&string(k, indent));
        out.push(':');
        value_after_key(out, v, indent);
    }
}

fn seq(out: &mut String, a: &[Value], indent: usize) {
    for v in a {
        pad(out, indent);
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                // The first key goes on the dash's line.
                let mut inner = String::new();
                map(&mut inner, m, indent + 2);
                out.push(' ');
                out.push_str(inner.trim_start_matches(' '));
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                seq(out, a, indent + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn value_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            seq(out, a, indent);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string: plain when unambiguous, a literal block when multi-line, quoted otherwise.
fn string(s: &str, indent: usize) -> String {
    if s.contains('\n') && literal_ok(s) {
        let mut out = String::from(if s.ends_with('\n') { "|" } else { "|-" });
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.extend(std::iter::repeat_n(' ', indent));
                out.push_str(line);
            }
        }
        return out;
    }
    if plain_ok(s) {
        return s.to_string();
    }
    if s.chars().any(|c| c.is_control()) {
        return serde_json::to_string(s).unwrap_or_default();
    }
    format!("'{}'", s.replace('\'', "''"))
}

/// Multi-line text a literal block keeps exactly.
fn literal_ok(s: &str) -> bool {
    !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n")
        && !s.chars().any(|c| c.is_control() && c != '\n')
        && !s.split('\n').any(|l| l.ends_with(' ') || l.ends_with('\t'))
}

/// Words YAML 1.1 or 1.2 reads as something other than a string.
const SPECIAL: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "=",
    "<<", ".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN",
];

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    !SPECIAL.contains(&s)
        // Numbers, dates and times start like this; quote them all.
        && !first.is_ascii_digit()
        && !"-+.?:,[]{}#&*!|>'\"%@` \t".contains(first)
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| c.is_control())
}

/// An object's top-level keys as kubectl prints them: `apiVersion`, `kind`, `metadata`, then
/// the rest in name order.
pub fn kube_order(m: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    const FIRST: [&str; 3] = ["apiVersion", "kind", "metadata"];
    let mut out: Vec<(&String, &Value)> =
        FIRST.iter().filter_map(|k| m.get_key_value(*k)).collect();
    out.extend(m.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())));
    out
}

/// A JSON value whose objects serialize their keys in [`kube_order`].
pub struct KubeOrdered<'a>(pub &'a Value);

impl serde::Serialize for KubeOrdered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in kube_order(m) {
                    map.serialize_entry(k, &KubeOrdered(v))?;
                }
                map.end()
            }
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(&KubeOrdered(v))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ambiguous_strings_are_quoted() {
        let v = json!({"a": ["yes", "on", "2025-01-02T03:04:05Z", "0777", "1.5", "", "it's", "x: y", "t2:0.1", "-x", "plain/text_1"]});
        let y = to_yaml_doc(&v);
        assert_eq!(
            y,
            "a:\n- 'yes'\n- 'on'\n- '2025-01-02T03:04:05Z'\n- '0777'\n- '1.5'\n- ''\n- it's\n- 'x: y'\n- t2:0.1\n- '-x'\n- plain/text_1\n"
        );
    }

    #[test]
    fn nesting_and_blocks() {
        let v = json!({"m": {"k": [{"a": 1, "b": {"c": true}}, [1, 2]], "e": {}, "l": []}, "t": "line1\n  line2\n"});
        let y = to_yaml_doc(&v);
        assert_eq!(
            y,
            "m:\n  e: {}\n  k:\n  - a: 1\n    b:\n      c: true\n  -\n    - 1\n    - 2\n  l: []\nt: |\n  line1\n    line2\n"
        );
    }
}
