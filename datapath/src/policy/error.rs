//! Policy errors: every error about a file names where it is (`file:line:column: field: message`),
//! so a user can jump straight to the offending value.

use std::fmt;

/// What went wrong, for callers that branch (the CLI maps `NotFound` to its own exit path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid YAML.
    Syntax,
    /// Valid YAML that does not fit the schema: unknown or missing field, wrong type.
    Schema,
    /// A value is out of range or inconsistent (bad port, endPort below port, bad regex, …).
    Invalid,
    /// Well-formed Cilium/Kubernetes policy using a feature Periscope does not implement.
    Unsupported,
    /// The same policy appears twice in one apply.
    Duplicate,
    /// `delete` named a policy that is not loaded.
    NotFound,
    /// `delete` named a policy that exists under several kinds.
    Ambiguous,
    /// The compiled result does not fit (e.g. the CIDR identity range is exhausted).
    Compile,
}

/// A policy error. `file` is `None` for errors about the repository (not found, ambiguous).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub kind: ErrorKind,
    pub file: Option<String>,
    /// 1-based; `None` when the location is unknown.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path, e.g. `spec.ingress[0].toPorts[0].ports[0].port`.
    pub field: Option<String>,
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> PolicyError {
        PolicyError {
            kind,
            file: None,
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn in_file(mut self, file: &str) -> PolicyError {
        self.file = Some(file.to_string());
        self
    }

    pub(crate) fn at(mut self, line: Option<usize>, column: Option<usize>) -> PolicyError {
        self.line = line;
        self.column = column;
        self
    }

    pub(crate) fn field(mut self, field: impl Into<String>) -> PolicyError {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            f.write_str(file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            f.write_str(": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_every_part_that_is_known() {
        let e = PolicyError::new(ErrorKind::Invalid, "invalid port \"8o\"")
            .in_file("rule1.yaml")
            .at(Some(14), Some(9))
            .field("spec.ingress[0].toPorts[0].ports[0].port");
        assert_eq!(
            e.to_string(),
            "rule1.yaml:14:9: spec.ingress[0].toPorts[0].ports[0].port: invalid port \"8o\""
        );
        let e = PolicyError::new(ErrorKind::Io, "No such file").in_file("x.yaml");
        assert_eq!(e.to_string(), "x.yaml: No such file");
        let e = PolicyError::new(ErrorKind::NotFound, "no policy \"rule9\"");
        assert_eq!(e.to_string(), "no policy \"rule9\"");
    }
}
