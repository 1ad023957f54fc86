//! The `mpi` key: `mpi: true`, or a map that turns MPI on (`mpi: {slots_per_worker: 2,
//! mpirun_args: [--bind-to, none]}`; `-D mpi.slots_per_worker=2` does too). Each layer's
//! value becomes assignments under `mpi.` (`enabled` is implied by a map that does not set it).

use serde_yaml::Value;

use super::fields::{self, describe, Problem};
use super::layer::Assignment;

/// Keys under `mpi`.
pub(super) const KEYS: &[&str] = &["enabled", "slots_per_worker", "mpirun_args"];

/// Most MPI slots (ranks) per worker.
pub(super) const MAX_SLOTS: u32 = 1024;

/// An example for messages.
const EXAMPLE: &str =
    "true, or a map such as {slots_per_worker: 2, mpirun_args: [--bind-to, none]}";

/// The assignments of one layer's `mpi` value.
pub(super) fn normalise(v: Value, out: &mut Vec<Assignment>) -> Result<(), Problem> {
    match v {
        Value::Null => Ok(()),
        Value::Bool(b) => {
            out.push(Assignment::new(&["mpi", "enabled"], Value::Bool(b), "mpi"));
            Ok(())
        }
        Value::Mapping(m) => {
            let mut enabled_given = false;
            for (k, sv) in m {
                let Some(sub) = fields::scalar_text(&k) else {
                    return Err(Problem::bad(
                        "mpi",
                        format!("keys must be text, got {}", describe(&k)),
                    ));
                };
                if !KEYS.contains(&sub.as_str()) {
                    return Err(Problem::Unknown {
                        key: format!("mpi.{sub}"),
                    });
                }
                enabled_given |= sub == "enabled";
                let written = format!("mpi.{sub}");
                out.push(Assignment::new(&["mpi", &sub], sv, &written));
            }
            if !enabled_given {
                // A map of MPI settings turns MPI on.
                out.push(Assignment::new(
                    &["mpi", "enabled"],
                    Value::Bool(true),
                    "mpi",
                ));
            }
            Ok(())
        }
        other => Err(Problem::bad(
            "mpi",
            format!("must be {EXAMPLE}, got {}", describe(&other)),
        )),
    }
}

/// `mpi.slots_per_worker`: 1 to [`MAX_SLOTS`].
pub(super) fn slots(v: &Value) -> Result<u32, String> {
    fields::whole_u32(v, 1, MAX_SLOTS)
}

/// `mpi.mpirun_args`: a list of words (or a string split on spaces).
pub(super) fn mpirun_args(v: &Value) -> Result<Vec<String>, String> {
    fields::words(v)
}
