//! From YAML text to located errors: splitting multi-document files, validating while
//! deserializing (so serde_yaml still knows where the value is), turning serde_yaml's messages
//! into [`PolicyError`]s with file, line, column and field path, and finding keys in the text for
//! checks that span several fields.
//!
//! Validation happens inside the deserializer on purpose: serde_yaml attaches the location and
//! path of the value being deserialized to any error raised while it is being read, and to
//! nothing else. Checks that need several fields of one mapping run in that mapping's visitor
//! ([`validated_mapping!`]) and name the offending key, which is then looked up in the text.

use std::sync::OnceLock;

use regex::Regex;

use super::error::{ErrorKind, PolicyError};

/// Separates the parts of a [`Fault`] encoded into a serde error message.
const MARK: char = '\u{1}';
/// Separates the keys of a fault's sub-path.
const SUB_SEP: char = '\u{2}';

/// A validation failure found inside a mapping: which key (path below the mapping) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub unsupported: bool,
    pub sub: Vec<String>,
    pub message: String,
}

impl Fault {
    pub fn invalid(sub: &[&str], message: impl Into<String>) -> Fault {
        Fault {
            unsupported: false,
            sub: sub.iter().map(|s| s.to_string()).collect(),
            message: message.into(),
        }
    }

    pub fn unsupported(sub: &[&str], message: impl Into<String>) -> Fault {
        Fault {
            unsupported: true,
            ..Fault::invalid(sub, message)
        }
    }

    /// Prefix every sub-path with `key` (a fault of a nested value reported by its parent).
    pub fn under(mut self, key: &str) -> Fault {
        self.sub.insert(0, key.to_string());
        self
    }

    /// Encoded as a serde custom error so it survives serde_yaml's formatting.
    pub fn into_error<E: serde::de::Error>(self) -> E {
        let kind = if self.unsupported { 'U' } else { 'I' };
        let sub = self.sub.join(&SUB_SEP.to_string());
        E::custom(format!("{MARK}{kind}{sub}{MARK}{}", self.message))
    }

    fn decode(text: &str) -> Option<Fault> {
        let rest = text.strip_prefix(MARK)?;
        let (head, message) = rest.split_once(MARK)?;
        let mut chars = head.chars();
        let unsupported = match chars.next()? {
            'U' => true,
            'I' => false,
            _ => return None,
        };
        let sub = chars.as_str();
        Some(Fault {
            unsupported,
            sub: if sub.is_empty() {
                Vec::new()
            } else {
                sub.split(SUB_SEP).map(str::to_string).collect()
            },
            message: message.to_string(),
        })
    }
}

/// A value-level error raised from a visitor, so serde_yaml places it at the value.
pub(crate) fn invalid_value<E: serde::de::Error>(message: impl Into<String>) -> E {
    Fault::invalid(&[], message).into_error()
}

pub(crate) fn unsupported_value<E: serde::de::Error>(message: impl Into<String>) -> E {
    Fault::unsupported(&[], message).into_error()
}

/// Implements `Deserialize` for a struct that derives it with `#[serde(remote = "Self")]` and has
/// an inherent `fn validate(&self) -> Result<(), Fault>`: the derived code reads the mapping, then
/// `validate` runs while serde_yaml still knows the mapping's path and location. `key:` with no
/// value reads as an empty mapping, as kubectl reads it.
macro_rules! validated_mapping {
    ($ty:ty, $what:literal) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(
                        self,
                        map: A,
                    ) -> Result<$ty, A::Error> {
                        let v = <$ty>::deserialize(
                            ::serde::de::value::MapAccessDeserializer::new(map),
                        )?;
                        v.validate().map_err(|f| f.into_error::<A::Error>())?;
                        Ok(v)
                    }
                    fn visit_unit<E: ::serde::de::Error>(self) -> Result<$ty, E> {
                        let empty = ::serde::de::value::MapDeserializer::<_, E>::new(
                            ::std::iter::empty::<(&str, &str)>(),
                        );
                        let v = <$ty>::deserialize(empty)?;
                        v.validate().map_err(|f| f.into_error::<E>())?;
                        Ok(v)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}
pub(crate) use validated_mapping;

/// A field Periscope recognises but does not implement: any value is rejected, at the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

impl<'de> serde::Deserialize<'de> for Unsupported {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Unsupported;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("nothing (unsupported field)")
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Unsupported, E> {
                Err(no())
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Unsupported, E> {
                Err(no())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Unsupported, E> {
                Err(no())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Unsupported, E> {
                Err(no())
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Unsupported, E> {
                Err(no())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Unsupported, E> {
                Err(no())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                _: A,
            ) -> Result<Unsupported, A::Error> {
                Err(no())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                _: A,
            ) -> Result<Unsupported, A::Error> {
                Err(no())
            }
        }
        fn no<E: serde::de::Error>() -> E {
            unsupported_value("not supported by periscope")
        }
        d.deserialize_any(V)
    }
}

/// One YAML document of a (possibly multi-document) file, with its position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document {
    pub text: String,
    /// 0-based index of the document's first line in the file.
    pub first_line: usize,
}

/// Split a file at `---` lines. A document marker can only start a line, so this split is exact
/// for everything but directives (`%YAML`), which policies never use. Documents holding only
/// comments and blank lines are dropped, as kubectl drops them.
pub(crate) fn split_documents(text: &str) -> Vec<Document> {
    let lines: Vec<&str> = text.lines().collect();
    let mut starts = vec![0];
    for (i, line) in lines.iter().enumerate() {
        let is_marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if is_marker && i > 0 {
            starts.push(i);
        }
    }
    let mut docs = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(lines.len());
        let chunk = &lines[start..end];
        let has_content = chunk.iter().any(|l| {
            let t = l.trim();
            !(t.is_empty() || t.starts_with('#') || t == "---" || t == "...")
        });
        if has_content {
            docs.push(Document {
                text: chunk.join("\n"),
                first_line: start,
            });
        }
    }
    docs
}

fn location_suffix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r" at line (\d+) column (\d+)").unwrap_or_else(|e| unreachable!("{e}"))
    })
}

/// A serde_yaml error on `doc` as a located policy error.
pub(crate) fn yaml_error(e: &serde_yaml::Error, doc: &Document, file: &str) -> PolicyError {
    let mut message = e.to_string();
    let mut line = e.location().map(|l| l.line());
    let mut column = e.location().map(|l| l.column());
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        // The location is reported separately; libyaml may also quote it mid-message.
        message = message.replacen(&suffix, "", 1);
    }
    // Locations quoted inside libyaml's messages are relative to the document too.
    message = location_suffix()
        .replace_all(&message, |c: &regex::Captures<'_>| {
            let l: usize = c[1].parse().unwrap_or(0);
            format!(" at line {} column {}", l + doc.first_line, &c[2])
        })
        .into_owned();

    let mut path = String::new();
    if let Some((p, rest)) = message.split_once(": ")
        && !p.is_empty()
        && !p.contains(' ')
        && !p.starts_with(MARK)
    {
        path = p.to_string();
        message = rest.to_string();
    }

    let kind;
    let mut field = path.clone();
    if let Some(fault) = Fault::decode(&message) {
        kind = if fault.unsupported {
            ErrorKind::Unsupported
        } else {
            ErrorKind::Invalid
        };
        if !fault.sub.is_empty() {
            let keys: Vec<&str> = fault.sub.iter().map(String::as_str).collect();
            if let (Some(l), Some(c)) = (line, column)
                && let Some((kl, kc)) = locate_keys(&doc.text, l, c, &keys)
            {
                line = Some(kl);
                column = Some(kc);
            }
            field = join_path(&path, &fault.sub.join("."));
        }
        message = fault.message;
    } else if let Some(name) = quoted_name(&message, "unknown field")
        .or_else(|| quoted_name(&message, "missing field"))
        .or_else(|| quoted_name(&message, "duplicate field"))
    {
        kind = ErrorKind::Schema;
        field = join_path(&path, &name);
    } else if message.starts_with("unknown variant") || message.starts_with("invalid value") {
        kind = ErrorKind::Invalid;
    } else if message.starts_with("invalid type") || message.starts_with("invalid length") {
        kind = ErrorKind::Schema;
    } else {
        kind = ErrorKind::Syntax;
    }
    if let Some(l) = line.as_mut() {
        *l += doc.first_line;
    }
    if line.is_none() {
        column = None;
    }
    PolicyError::new(kind, message)
        .in_file(file)
        .at(line, column)
        .field(field)
}

fn quoted_name(message: &str, prefix: &str) -> Option<String> {
    if !message.starts_with(prefix) {
        return None;
    }
    message.split('`').nth(1).map(str::to_string)
}

pub(crate) fn join_path(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (false, true) => parent.to_string(),
        (false, false) => format!("{parent}.{child}"),
    }
}

/// Where a key path sits in block-style YAML, starting from the mapping whose first key is at
/// (`line`, `column`) (1-based, as serde_yaml reports mappings). Returns the deepest key found,
/// or `None` when even the first key is not there (flow style, or the key is missing).
pub(crate) fn locate_keys(
    text: &str,
    line: usize,
    column: usize,
    keys: &[&str],
) -> Option<(usize, usize)> {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let (mut l, mut c) = (line.checked_sub(1)?, column.checked_sub(1)?);
    let mut found = None;
    for (i, key) in keys.iter().enumerate() {
        let Some((kl, kc)) = find_in_mapping(&lines, l, c, key) else {
            return found;
        };
        found = Some((kl + 1, kc + 1));
        if i + 1 < keys.len() {
            match nested_mapping(&lines, kl, kc) {
                Some((nl, nc)) => (l, c) = (nl, nc),
                None => return found,
            }
        }
    }
    found
}

/// The root mapping's first key of a document, 1-based.
pub(crate) fn root_mapping(text: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') || t == "---" || t.starts_with('%') {
            continue;
        }
        if let Some(rest) = t.strip_prefix("--- ") {
            let col = line.chars().count() - rest.trim_start().chars().count();
            return Some((i + 1, col + 1));
        }
        let col = line.chars().count() - t.chars().count();
        return Some((i + 1, col + 1));
    }
    None
}

fn is_content(line: &[char]) -> Option<usize> {
    let ind = line.iter().take_while(|c| **c == ' ').count();
    match line.get(ind) {
        None | Some('#') => None,
        Some(_) => Some(ind),
    }
}

fn key_at(line: &[char], col: usize, key: &str) -> bool {
    let rest: String = line.iter().skip(col).collect();
    for candidate in [key.to_string(), format!("\"{key}\""), format!("'{key}'")] {
        if let Some(after) = rest.strip_prefix(&candidate)
            && after.trim_start().starts_with(':')
        {
            return true;
        }
    }
    false
}

fn find_in_mapping(lines: &[Vec<char>], l: usize, c: usize, key: &str) -> Option<(usize, usize)> {
    let first = lines.get(l)?;
    if key_at(first, c, key) {
        return Some((l, c));
    }
    for (idx, line) in lines.iter().enumerate().skip(l + 1) {
        let Some(ind) = is_content(line) else {
            continue;
        };
        if ind < c {
            return None;
        }
        if ind == c && key_at(line, c, key) {
            return Some((idx, c));
        }
    }
    None
}

fn nested_mapping(lines: &[Vec<char>], kl: usize, kc: usize) -> Option<(usize, usize)> {
    let line: String = lines.get(kl)?.iter().skip(kc).collect();
    let after = line.split_once(':')?.1.trim();
    if !after.is_empty() && !after.starts_with('#') {
        return None; // flow style or a scalar: no nested block mapping to descend into
    }
    for (idx, line) in lines.iter().enumerate().skip(kl + 1) {
        let Some(ind) = is_content(line) else {
            continue;
        };
        if ind <= kc || line.get(ind) == Some(&'-') {
            return None;
        }
        return Some((idx, ind));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_keeps_line_offsets() {
        let text = "# leading comment\na: 1\n---\nb: 2\n--- \n# only a comment\n---\nc: 3\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].first_line, 0);
        assert_eq!(docs[1].first_line, 2);
        assert_eq!(docs[1].text, "---\nb: 2");
        assert_eq!(docs[2].first_line, 6);
        // `----` and `---x` are content, not markers.
        assert_eq!(split_documents("a: |\n  ----\n").len(), 1);
        assert!(split_documents("\n# nothing\n").is_empty());
    }

    #[test]
    fn locates_nested_keys_in_block_yaml() {
        let text = "spec:\n  ingress:\n  - toPorts:\n    - port: \"80\"\n      # note\n      endPort: 70\n    rules:\n      x: 1\n";
        assert_eq!(locate_keys(text, 4, 7, &["endPort"]), Some((6, 7)));
        assert_eq!(locate_keys(text, 4, 7, &["port"]), Some((4, 7)));
        assert_eq!(locate_keys(text, 4, 7, &["missing"]), None);
        assert_eq!(locate_keys(text, 1, 1, &["spec", "ingress"]), Some((2, 3)));
        assert_eq!(locate_keys(text, 3, 5, &["rules", "x"]), Some((8, 7)));
        assert_eq!(
            locate_keys(text, 4, 7, &["rules"]),
            None,
            "a sibling of the parent"
        );
        // Flow style: the key is not found; the caller keeps the mapping's own location.
        assert_eq!(
            locate_keys("{port: 1, endPort: 0}", 1, 2, &["endPort"]),
            None
        );
        assert_eq!(root_mapping("# c\n\n---\n  a: 1"), Some((4, 3)));
    }

    #[test]
    fn faults_round_trip_through_messages() {
        let e: serde_yaml::Error = Fault::unsupported(&["a", "b"], "no").into_error();
        let f = Fault::decode(&e.to_string()).unwrap();
        assert_eq!(f, Fault::unsupported(&["a", "b"], "no"));
        assert_eq!(Fault::decode("plain"), None);
    }
}
