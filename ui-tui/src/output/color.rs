//! ANSI colors in Hubble's scheme (hosts cyan, ports yellow, identities magenta, verdicts
//! green/red/yellow), and escaping of server-provided text so it cannot drive the terminal.

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// Wraps text in color sequences when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colorer {
    enabled: bool,
}

impl Colorer {
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    fn paint(&self, color: &str, s: &str) -> String {
        if self.enabled {
            format!("{color}{s}{RESET}")
        } else {
            s.to_string()
        }
    }

    pub fn host(&self, s: &str) -> String {
        self.paint(CYAN, s)
    }
    pub fn port(&self, s: &str) -> String {
        self.paint(YELLOW, s)
    }
    pub fn identity(&self, s: &str) -> String {
        self.paint(MAGENTA, s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint(GREEN, s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint(RED, s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint(YELLOW, s)
    }
}

/// Makes text from the server safe to print: escape characters become `^[`, carriage returns and
/// newlines their backslash forms, other control characters `?`. Printable text is unchanged.
pub fn sanitize(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\x1b' => out.push_str("^["),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_neutralises_terminal_escapes() {
        assert_eq!(sanitize("plain/pod-1"), "plain/pod-1");
        assert_eq!(sanitize("a\x1b[2Jb"), "a^[[2Jb");
        assert_eq!(sanitize("x\ry\nz\u{7}"), "x\\ry\\nz?");
    }

    #[test]
    fn colors_only_when_enabled() {
        assert_eq!(Colorer::new(false).host("h"), "h");
        assert_eq!(Colorer::new(true).red("DROPPED"), "\x1b[31mDROPPED\x1b[0m");
    }
}
