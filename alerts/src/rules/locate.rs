//! Line numbers for problems found after parsing (unknown notifier, missing
//! threshold, ...), which serde cannot place. A light scan of block-style
//! YAML: the items of a top-level list and the keys inside one item. Flow
//! style (`rules: [{...}]`) falls back to the list's line.

pub struct Locator<'a> {
    lines: Vec<&'a str>,
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

fn is_blank(l: &str) -> bool {
    let t = l.trim();
    t.is_empty() || t.starts_with('#')
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Locator<'a> {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// 0-based line indices where the items of top-level `key:` start, and
    /// the index after the list.
    fn items(&self, key: &str) -> Option<(usize, Vec<usize>, usize)> {
        let head = format!("{key}:");
        let start = self
            .lines
            .iter()
            .position(|l| indent(l) == 0 && l.starts_with(&head))?;
        let mut items = Vec::new();
        let mut item_indent = None;
        let mut end = self.lines.len();
        for (i, l) in self.lines.iter().enumerate().skip(start + 1) {
            if is_blank(l) {
                continue;
            }
            let t = l.trim_start();
            let is_item = t == "-" || t.starts_with("- ");
            if indent(l) == 0 && !is_item {
                end = i;
                break;
            }
            if is_item && item_indent.is_none_or(|d| d == indent(l)) {
                item_indent = Some(indent(l));
                items.push(i);
            }
        }
        Some((start, items, end))
    }

    /// 1-based line of item `index` of top-level list `key`.
    pub fn item(&self, key: &str, index: usize) -> Option<usize> {
        let (start, items, _) = self.items(key)?;
        Some(items.get(index).copied().unwrap_or(start) + 1)
    }

    /// 1-based line of `field:` inside item `index` of list `key`.
    pub fn field(&self, key: &str, index: usize, field: &str) -> Option<usize> {
        let (_, items, end) = self.items(key)?;
        let from = *items.get(index)?;
        let to = items.get(index + 1).copied().unwrap_or(end);
        let head = format!("{field}:");
        (from..to)
            .find(|&i| {
                let t = self.lines[i].trim_start();
                let t = t.strip_prefix("- ").unwrap_or(t).trim_start();
                t.starts_with(&head)
            })
            .map(|i| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_items_and_their_fields() {
        let text = "# c\nnotifiers: []\nrules:\n  # first\n  - name: a\n    kind: x\n\n  - name: b\n    notify: [z]\nother: 1\n";
        let l = Locator::new(text);
        assert_eq!(l.item("rules", 0), Some(5));
        assert_eq!(l.item("rules", 1), Some(8));
        assert_eq!(l.field("rules", 1, "notify"), Some(9));
        assert_eq!(l.field("rules", 0, "notify"), None);
        assert_eq!(l.field("rules", 1, "name"), Some(8));
    }

    #[test]
    fn lists_at_column_zero_work_too() {
        let l = Locator::new("rules:\n- name: a\n- name: b\n  for: 5x\n");
        assert_eq!(l.item("rules", 1), Some(3));
        assert_eq!(l.field("rules", 1, "for"), Some(4));
    }
}
