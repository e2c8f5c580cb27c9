//! nginx's inheritance from `http` to `server` to `location` (and nested
//! locations): a directive written in an inner block wins; a list
//! directive (`add_header`, `proxy_set_header`, `proxy_hide_header`...)
//! written even once in a block replaces every inherited one.

use crate::parse::Directive;

/// The blocks from the outermost (`http`) to the innermost.
#[derive(Clone, Default)]
pub(crate) struct Scope<'a> {
    levels: Vec<&'a [Directive]>,
}

impl<'a> Scope<'a> {
    /// This scope with `block` inside it.
    pub(crate) fn with(&self, block: &'a [Directive]) -> Scope<'a> {
        let mut levels = self.levels.clone();
        levels.push(block);
        Scope { levels }
    }

    /// The innermost block.
    pub(crate) fn own(&self) -> &'a [Directive] {
        self.levels.last().copied().unwrap_or(&[])
    }

    /// The directive `name` in effect: the last one written in the
    /// innermost block that has one.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Directive> {
        self.levels
            .iter()
            .rev()
            .find_map(|level| level.iter().rev().find(|d| d.name == name))
    }

    /// Every `name` of the innermost block that has one: a list directive's
    /// entries in effect.
    pub(crate) fn list(&self, name: &str) -> Vec<&'a Directive> {
        for level in self.levels.iter().rev() {
            let own: Vec<&Directive> = level.iter().filter(|d| d.name == name).collect();
            if !own.is_empty() {
                return own;
            }
        }
        Vec::new()
    }

    /// The block `depth` levels in (0: `http`, 1: a `server`).
    pub(crate) fn level(&self, depth: usize) -> &'a [Directive] {
        self.levels.get(depth).copied().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    #[test]
    fn one_add_header_drops_the_inherited_ones() {
        let text = "add_header A 1; add_header B 2; proxy_read_timeout 5s;
            location / { add_header C 3; }
            location /x { proxy_read_timeout 9s; }";
        let list = parse(text, "n.conf").unwrap_or_default();
        let server = Scope::default().with(&list);
        let first = server.with(list[3].children());
        let second = server.with(list[4].children());
        let args = |ds: Vec<&Directive>| ds.iter().map(|d| d.arg(0).to_string()).collect::<Vec<_>>();
        assert_eq!(args(first.list("add_header")), ["C"]);
        assert_eq!(args(second.list("add_header")), ["A", "B"]);
        assert_eq!(first.get("proxy_read_timeout").map(|d| d.arg(0)), Some("5s"));
        assert_eq!(second.get("proxy_read_timeout").map(|d| d.arg(0)), Some("9s"));
    }
}
