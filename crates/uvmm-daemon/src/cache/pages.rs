//! One daemon-wide listing of every cached VM in name order: the index behind pages
//! sorted by name (the default sort), without a host filter.
//!
//! Why: a page request used to walk all hosts' rows, glob-match the name, description and
//! contact of every VM, collect the matches into a vector and select and sort it — at
//! 25,000 VMs about 1.4 ms of CPU per request with one client and, with 64 clients on two
//! cores, hundreds of milliseconds of queueing. Here the VMs are kept in page order, so a
//! page needs no sort, and their folded (lower-case) names, descriptions and contacts sit
//! in one contiguous buffer, so a pattern's longest literal piece is found with one
//! substring search and only the VMs holding it are checked with the full glob. The
//! total is a count; only the page's rows are collected.
//!
//! The index is built on the first page after a change of the VM set, a name or notes (the
//! same changes that rebuild a host's rows, see `HostEntry::vms_mut`), and refers to the
//! hosts' rows by position; figures (state, memory, …) are read from those rows, which
//! statistics refresh in place, so state filters see the current state without a rebuild.

use super::listing::{ListRow, ListRows};
use super::HostEntry;
use memchr::memmem;
use uvmm_model::glob::{fold, Pattern};
use uvmm_model::VmState;

/// A VM in page order: its host's position in the cache's host order and its row there.
#[derive(Debug, Clone, Copy)]
struct Entry {
    host: u32,
    row: u32,
    /// Position of the first entry with the same lower-case name: a descending page
    /// reverses the order of these groups but keeps each group's own (ascending) order,
    /// as the sort it replaces did.
    group: u32,
}

#[derive(Debug, Default)]
pub struct NameIndex {
    entries: Vec<Entry>,
    /// Per entry: folded name, NUL, folded description, NUL, folded contact, NUL.
    text: String,
    /// Where each entry's text starts; one more element for the end.
    starts: Vec<u32>,
    hosts: usize,
}

/// What a page keeps.
#[derive(Clone, Copy)]
pub struct Filter<'a> {
    pub state: Option<VmState>,
    pub name: Option<&'a str>,
    pub pattern: Option<&'a Pattern>,
    pub keep: Keep<'a>,
}

/// The caller's scope: which (host, VM name) it may see; `None`: everything.
pub type Keep<'a> = Option<&'a dyn Fn(&HostEntry, &str) -> bool>;

/// A VM of a page: the host's position (as given to `page`) and the row in its rows.
pub type Hit = (usize, usize);

fn pos(n: usize) -> u32 {
    // Positions count VMs and bytes of their notes: far below 4 GiB.
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl NameIndex {
    /// `hosts` in the cache's order; queries must pass the same hosts in the same order
    /// (the index is dropped whenever the host set changes).
    pub fn build(hosts: &[&HostEntry]) -> NameIndex {
        let total: usize = hosts.iter().map(|h| h.rows().rows.len()).sum();
        let mut entries = Vec::with_capacity(total);
        for (hi, h) in hosts.iter().enumerate() {
            for ri in 0..h.rows().rows.len() {
                entries.push(Entry {
                    host: pos(hi),
                    row: pos(ri),
                    group: 0,
                });
            }
        }
        let row = |e: &Entry| {
            let lr = hosts[e.host as usize].rows();
            (lr, &lr.rows[e.row as usize])
        };
        // The order of the sort this replaces: lower-case name, name, host id; then the
        // host's row order (UUID), which that sort left to chance.
        entries.sort_by(|a, b| {
            let ((la, ra), (lb, rb)) = (row(a), row(b));
            ra.name_prefix
                .cmp(&rb.name_prefix)
                .then_with(|| la.name_key(ra).cmp(lb.name_key(rb)))
                .then_with(|| la.name(ra).cmp(lb.name(rb)))
                .then_with(|| hosts[a.host as usize].id.cmp(&hosts[b.host as usize].id))
                .then_with(|| a.row.cmp(&b.row))
        });
        let mut text = String::with_capacity(total * 48);
        let mut starts = Vec::with_capacity(total + 1);
        for i in 0..entries.len() {
            let (lr, r) = row(&entries[i]);
            entries[i].group = match i.checked_sub(1).map(|p| row(&entries[p])) {
                Some((lp, rp)) if lp.name_key(rp) == lr.name_key(r) => entries[i - 1].group,
                _ => pos(i),
            };
            starts.push(pos(text.len()));
            for field in [Some(lr.name(r)), lr.description(r), lr.contact(r)] {
                fold(field.unwrap_or_default(), &mut text);
                text.push('\0');
            }
        }
        starts.push(pos(text.len()));
        NameIndex {
            entries,
            text,
            starts,
            hosts: hosts.len(),
        }
    }

    /// The total of VMs `f` keeps and the page's VMs from `offset`, at most `limit`.
    pub fn page(
        &self,
        hosts: &[&HostEntry],
        f: &Filter,
        desc: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> (usize, Vec<Hit>) {
        debug_assert_eq!(hosts.len(), self.hosts);
        let limit = limit.unwrap_or(usize::MAX);
        let mut total = 0;
        let mut page = Vec::new();
        let mut matched = Vec::new();
        let literal = f.pattern.map(Pattern::literal);
        // A plain word (`*word*`) matches exactly where its literal was found; the texts
        // are NUL-separated, so a literal without NUL lies inside one field.
        let found_is_match = f.pattern.is_some_and(Pattern::is_substring)
            && literal.is_some_and(|l| !l.contains('\0'));
        let rest = Filter {
            pattern: f.pattern.filter(|_| !found_is_match),
            ..*f
        };
        // Nothing left to check: a candidate is a match, and its host's rows stay
        // untouched unless it is on the page.
        let all_match = rest.state.is_none()
            && rest.name.is_none()
            && rest.pattern.is_none()
            && rest.keep.is_none();
        self.candidates(literal, |i| {
            let e = self.entries[i];
            if !all_match {
                let h = hosts[e.host as usize];
                let lr = h.rows();
                if !keeps(&rest, h, lr, &lr.rows[e.row as usize]) {
                    return;
                }
            }
            if desc {
                matched.push(pos(i));
            } else if total >= offset && total - offset < limit {
                page.push((e.host as usize, e.row as usize));
            }
            total += 1;
        });
        if desc {
            page = self
                .descending(&matched)
                .skip(offset)
                .take(limit)
                .map(|e| (e.host as usize, e.row as usize))
                .collect();
        }
        (total, page)
    }

    /// Call `visit` with every entry that may match, in page order: those whose folded
    /// text holds `literal` (all of them without one).
    fn candidates(&self, literal: Option<&str>, mut visit: impl FnMut(usize)) {
        let literal = literal.unwrap_or_default();
        if literal.is_empty() {
            (0..self.entries.len()).for_each(visit);
            return;
        }
        let finder = memmem::Finder::new(literal.as_bytes());
        let bytes = self.text.as_bytes();
        let (mut from, mut i) = (0usize, 0usize);
        while let Some(at) = finder.find(&bytes[from..]).map(|o| from + o) {
            // The entry whose text holds `at`; a hit spanning two entries' texts only
            // makes a candidate that the full match turns down.
            // Hits are often dense (every other VM): look at the next entry first.
            if self.starts[i + 1] as usize <= at {
                i += self.starts[i + 1..].partition_point(|s| *s as usize <= at);
            }
            visit(i);
            i += 1;
            if i >= self.entries.len() {
                break;
            }
            from = self.starts[i] as usize;
        }
    }

    /// `matched` (ascending positions) in descending page order.
    fn descending<'a>(&'a self, matched: &'a [u32]) -> impl Iterator<Item = Entry> + 'a {
        let mut end = matched.len();
        std::iter::from_fn(move || {
            let last = *matched.get(end.checked_sub(1)?)?;
            let group = self.entries[last as usize].group;
            let start = matched[..end].partition_point(|m| *m < group);
            let run = &matched[start..end];
            end = start;
            Some(run.iter().map(|m| self.entries[*m as usize]))
        })
        .flatten()
    }
}

/// The filters of a page, for both paths: state, the caller's scope, the exact name, then
/// the pattern on name, description or contact.
pub fn keeps(f: &Filter, h: &HostEntry, lr: &ListRows, r: &ListRow) -> bool {
    f.state.is_none_or(|s| r.state == s)
        && f.keep.is_none_or(|k| k(h, lr.name(r)))
        && f.name.is_none_or(|n| lr.name(r) == n)
        && f.pattern.is_none_or(|pat| {
            pat.matches(lr.name(r))
                || lr.description(r).is_some_and(|d| pat.matches(d))
                || lr.contact(r).is_some_and(|c| pat.matches(c))
        })
}

#[cfg(test)]
mod tests;
