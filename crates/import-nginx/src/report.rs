//! The report: one line for each nginx directive that was not carried over
//! as it is, saying what was done with it and whether that changes what a
//! client or an upstream sees.

use std::fmt;

use crate::parse::Directive;

/// What was done with a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// portcullis does it anyway, or it does not matter to a proxy.
    NotNeeded(String),
    /// Left out, and the behaviour it gave is gone.
    Dropped(String),
    /// Carried over as something close, said how.
    Approximated(String),
    /// Left out: what to write depends on what the operator wants.
    NeedsDecision(String),
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `file:line`.
    pub at: String,
    /// The directive as written.
    pub directive: String,
    pub action: Action,
    /// Whether a client or an upstream would see the difference.
    pub changes_behaviour: bool,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, why) = match &self.action {
            Action::NotNeeded(why) => ("dropped (not needed: ", why),
            Action::Dropped(why) => ("dropped (", why),
            Action::Approximated(how) => ("approximated (", how),
            Action::NeedsDecision(why) => ("needs a decision (", why),
        };
        write!(f, "{}: {}: {what}{why})", self.at, self.directive)
    }
}

/// The lines gathered while translating.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) lines: Vec<Line>,
}

impl Report {
    fn push(&mut self, d: &Directive, action: Action, changes_behaviour: bool) {
        let line = Line {
            at: d.at(),
            directive: d.name_and_args(),
            action,
            changes_behaviour,
        };
        // A directive inherited by several locations is reported once.
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    pub(crate) fn not_needed(&mut self, d: &Directive, why: impl Into<String>) {
        self.push(d, Action::NotNeeded(why.into()), false);
    }

    pub(crate) fn dropped(&mut self, d: &Directive, why: impl Into<String>) {
        self.push(d, Action::Dropped(why.into()), true);
    }

    /// `changes`: whether the approximation is visible on the wire.
    pub(crate) fn approximated(&mut self, d: &Directive, how: impl Into<String>, changes: bool) {
        self.push(d, Action::Approximated(how.into()), changes);
    }

    pub(crate) fn decision(&mut self, d: &Directive, why: impl Into<String>) {
        self.push(d, Action::NeedsDecision(why.into()), true);
    }
}
