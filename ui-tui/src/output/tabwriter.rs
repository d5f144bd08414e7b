//! Column alignment like Go's `text/tabwriter` with Hubble's settings (minimum cell width 2,
//! padding 3, spaces, left-aligned): cells are tab-terminated, the text after a line's last tab
//! is not aligned, and column widths are computed per block of consecutive lines that have the
//! column.

/// Buffers rows and renders them aligned on [`TabWriter::render`].
#[derive(Debug, Clone, Default)]
pub struct TabWriter {
    /// Each row: tab-terminated cells followed by the trailing (unaligned) cell.
    lines: Vec<Vec<String>>,
    minwidth: usize,
    padding: usize,
}

impl TabWriter {
    /// Hubble's `tabwriter.NewWriter(w, 2, 0, 3, ' ', 0)`.
    pub fn hubble() -> Self {
        Self {
            lines: Vec::new(),
            minwidth: 2,
            padding: 3,
        }
    }

    /// Adds one row; every cell but the last is aligned.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.lines.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Renders every buffered row (each ending in a newline) and clears the buffer.
    pub fn render(&mut self) -> String {
        let mut out = String::new();
        let mut widths = Vec::new();
        let lines = std::mem::take(&mut self.lines);
        self.format(&lines, &mut widths, 0, lines.len(), &mut out);
        out
    }

    fn format(
        &self,
        lines: &[Vec<String>],
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A block of lines that have a cell in this column starts here.
            write_lines(lines, widths, line0, this, out);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(text_width(&lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(lines, widths, line0, this, out);
            widths.pop();
            line0 = this;
        }
        write_lines(lines, widths, line0, line1, out);
    }
}

fn write_lines(
    lines: &[Vec<String>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    for line in &lines[line0..line1] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(&w) = widths.get(j)
                && j + 1 < line.len()
            {
                out.extend(std::iter::repeat_n(' ', w.saturating_sub(text_width(cell))));
            }
        }
        out.push('\n');
    }
}

fn text_width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_go_tabwriter() {
        let mut tw = TabWriter::hubble();
        tw.row(["NAME", "STATUS", "AGE"]);
        tw.row(["node-a", "Connected", "4m46s"]);
        tw.row(["b", "", "N/A"]);
        assert_eq!(
            tw.render(),
            "NAME     STATUS      AGE\n\
             node-a   Connected   4m46s\n\
             b                    N/A\n"
        );
        assert!(tw.is_empty());
    }

    #[test]
    fn blocks_are_aligned_separately() {
        let mut tw = TabWriter::hubble();
        tw.row(["a", "b"]);
        tw.row(["only"]);
        tw.row(["longer-cell", "c"]);
        // The single-cell line splits the first column into two blocks.
        assert_eq!(tw.render(), "a   b\nonly\nlonger-cell   c\n");
        let mut tw = TabWriter::hubble();
        tw.row(["", "x"]);
        assert_eq!(tw.render(), "   x\n");
    }
}
