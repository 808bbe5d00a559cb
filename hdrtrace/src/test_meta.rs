//! A static callsite for unit tests that build records by hand.

use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Level, Metadata};

struct Site;

impl Callsite for Site {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        &META
    }
}

static SITE: Site = Site;

/// A span callsite with five fields, `a` to `e`.
pub(crate) static META: Metadata<'static> = Metadata::new(
    "test",
    "hdrtrace",
    Level::INFO,
    None,
    None,
    None,
    FieldSet::new(&["a", "b", "c", "d", "e"], Identifier(&SITE)),
    Kind::SPAN,
);
