//! PLACEHOLDER actor: holds the place of an actor whose issue is not built yet (it keeps its name, its slot in the
//! tree, its supervision, heartbeat and fault drills, and handles nothing but `Ping`). The daemon logs a warning
//! naming each placeholder at start, `/status` shows it as `kind: placeholder` and its `/health` check (`tree.<name>`)
//! says it is one, so operators can see which parts of the tree do real work. Replaced actor by actor as their issues land.

use crate::runtime::{Behavior, Ctx};

/// A stand-in actor that does no domain work (see the module doc).
#[derive(Debug, Default)]
pub struct PlaceholderActor {
    pub role: &'static str,
}

impl Behavior for PlaceholderActor {
    const PLACEHOLDER: bool = true;

    fn started(&mut self, ctx: &mut Ctx<'_, Self>) {
        tracing::warn!(
            actor = ctx.name(),
            role = self.role,
            "placeholder actor: this part of the tree does no work yet"
        );
    }
}
