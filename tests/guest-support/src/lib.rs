//! Support for the guest fixtures in `tests/guests/`.
//!
//! Each fixture is a real plugin with one task type whose name is the
//! plugin's name. [`fixture!`] writes the plugin around one `execute` body, so
//! a fixture's file holds only what it does to the sandbox.

pub use flowmesh_sdk;

/// Defines and exports a one-task-type plugin.
///
/// ```ignore
/// flowmesh_guest_support::fixture! {
///     name: "panic",
///     description: "Panics.",
///     spec: {},
///     output: (),
///     execute: |_spec| { panic!("on purpose") }
/// }
/// ```
///
/// The spec fields are those of a struct (with `///` docs); the crate using
/// the macro depends on `serde` and `schemars` for their derives. The body
/// returns `Result<output, TaskError>`; `TaskError` is in scope.
#[macro_export]
macro_rules! fixture {
    (
        name: $name:literal,
        description: $description:literal,
        spec: { $($fields:tt)* },
        output: $output:ty,
        execute: |$spec:pat_param| $body:block
    ) => {
        use $crate::flowmesh_sdk::TaskError;

        /// Spec of the fixture's task.
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct Spec {
            $($fields)*
        }

        /// The fixture's only task type.
        pub struct Fixture;

        impl $crate::flowmesh_sdk::TaskType for Fixture {
            const NAME: &'static str = $name;
            const DESCRIPTION: &'static str = $description;
            type Spec = Spec;
            type Output = $output;

            fn execute(
                $spec: Spec,
                _task: &$crate::flowmesh_sdk::TaskInfo,
            ) -> Result<$output, TaskError> $body
        }

        /// The fixture plugin.
        pub struct FixturePlugin;

        impl $crate::flowmesh_sdk::Plugin for FixturePlugin {
            const NAME: &'static str = $name;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            const DESCRIPTION: &'static str = $description;

            fn task_types(types: &mut $crate::flowmesh_sdk::TaskTypes) {
                types.add::<Fixture>();
            }
        }

        $crate::flowmesh_sdk::export!(FixturePlugin);
    };
}
