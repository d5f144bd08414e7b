//! Kubernetes-style label selectors over Cilium labels (`source:key=value`), as Hubble's
//! `--label` filters use them: `k8s:org=empire`, `org in (empire, alliance)`, `!debug`, …
//! A key without a source matches any source.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    In(Vec<String>),
    NotIn(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    /// None = any source.
    source: Option<String>,
    key: String,
    op: Op,
}

/// A parsed selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

fn split_key(raw: &str) -> (Option<String>, String) {
    match raw.split_once(':') {
        Some(("any", k)) => (None, k.to_string()),
        Some((s, k)) => (Some(s.to_string()), k.to_string()),
        None => (None, raw.to_string()),
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised value list in {rest:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl Selector {
    pub fn parse(input: &str) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for part in split_top(input)? {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!("empty requirement in selector {input:?}"));
            }
            let req = if let Some(k) = part.strip_prefix('!') {
                let (source, key) = split_key(k.trim());
                Requirement {
                    source,
                    key,
                    op: Op::NotExists,
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                let (source, key) = split_key(k.trim());
                Requirement {
                    source,
                    key,
                    op: Op::NotIn(vec![v.trim().to_string()]),
                }
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                let (source, key) = split_key(k.trim());
                Requirement {
                    source,
                    key,
                    op: Op::In(vec![v.trim().to_string()]),
                }
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                let (source, key) = split_key(k.trim());
                Requirement {
                    source,
                    key,
                    op: Op::NotIn(parse_set(rest)?),
                }
            } else if let Some((k, rest)) = part.split_once(" in ") {
                let (source, key) = split_key(k.trim());
                Requirement {
                    source,
                    key,
                    op: Op::In(parse_set(rest)?),
                }
            } else {
                let (source, key) = split_key(part);
                Requirement {
                    source,
                    key,
                    op: Op::Exists,
                }
            };
            if !valid_key(&req.key) {
                return Err(format!(
                    "invalid label key {:?} in selector {input:?}",
                    req.key
                ));
            }
            reqs.push(req);
        }
        Ok(Selector { reqs })
    }

    /// `labels` are `source:key=value` (or `source:key` for valueless labels).
    pub fn matches<S: AsRef<str>>(&self, labels: &[S]) -> bool {
        self.reqs.iter().all(|r| {
            let mut values = labels.iter().filter_map(|l| {
                let l = l.as_ref();
                let (src, kv) = l.split_once(':').unwrap_or(("", l));
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let src_ok = r.source.as_deref().is_none_or(|s| s == src);
                (src_ok && k == r.key).then_some(v)
            });
            match &r.op {
                Op::Exists => values.next().is_some(),
                Op::NotExists => values.next().is_none(),
                Op::In(set) => values.any(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => values.all(|v| !set.iter().any(|s| s == v)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XWING: &[&str] = &[
        "k8s:class=xwing",
        "k8s:io.kubernetes.pod.namespace=default",
        "k8s:org=alliance",
    ];
    const WORLD: &[&str] = &["reserved:world"];

    fn m(sel: &str, labels: &[&str]) -> bool {
        Selector::parse(sel)
            .expect("valid selector")
            .matches(labels)
    }

    #[test]
    fn equality_with_and_without_source() {
        assert!(m("org=alliance", XWING));
        assert!(m("k8s:org=alliance", XWING));
        assert!(m("any:org==alliance", XWING));
        assert!(!m("k8s:org=empire", XWING));
        assert!(!m("container:org=alliance", XWING));
    }

    #[test]
    fn sets_existence_and_conjunction() {
        assert!(m("org in (empire, alliance)", XWING));
        assert!(!m("org notin (alliance)", XWING));
        assert!(m("org!=empire", XWING));
        assert!(m("class,!debug", XWING));
        assert!(!m("class=xwing,org=empire", XWING));
        assert!(m("reserved:world", WORLD));
        assert!(!m("reserved:world", XWING));
    }

    #[test]
    fn invalid_selectors_are_rejected() {
        for bad in ["", "org in (a", "a,,b", "=x", "org in empire", "bad key=1"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
