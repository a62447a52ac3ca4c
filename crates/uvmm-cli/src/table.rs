//! Plain-text tables for people (`--json` is for scripts).

pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| -> String {
            let last = cells.len().saturating_sub(1);
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate() {
                out.push_str(c);
                if i < last {
                    let pad = widths[i] - c.chars().count() + 2;
                    out.push_str(&" ".repeat(pad));
                }
            }
            out.trim_end().to_string()
        };
        let mut out = line(self.headers.clone());
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
            out.push('\n');
        }
        out
    }
}

/// The table of backed-up VMs (shared with uvmm-restore -l).
pub fn backup_table(list: &[uvmm_api::BackupSummary]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "UUID",
        "HOST",
        "TYPE",
        "VERSIONS",
        "LAST CHANGE",
        "CAUSE",
    ]);
    for b in list {
        t.row(vec![
            b.name.clone() + if b.deleted { " (deleted)" } else { "" },
            b.uuid.clone(),
            if b.host.is_empty() {
                "-".into()
            } else {
                b.host.clone()
            },
            format!("{}/{}", b.hypervisor, b.os_type),
            b.version_count.to_string(),
            b.last_change.clone(),
            b.last_cause.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec!["web-01".into(), "running".into()]);
        t.row(vec!["a".into(), "shutoff".into()]);
        assert_eq!(
            t.render(),
            "NAME    STATE\nweb-01  running\na       shutoff\n"
        );
    }
}
