//! Validation of the global `priority` block: the classes every policy set's shedding uses,
//! the header that carries them, and the header values that name them.

use super::checks;
use super::error::Failure;
use super::error::Path;
use super::shape::{self, Fields};
use super::validate::check_name;
use super::{PriorityClasses, PriorityId};
use crate::shedding::classify::ValueMatch;

/// Default priority classes, most important first.
pub(crate) const DEFAULT_PRIORITY_CLASSES: &[&str] = &["critical", "standard", "sheddable"];
/// Default class of requests without a priority header.
pub(crate) const DEFAULT_PRIORITY: &str = "standard";
/// Default header carrying the priority class.
pub(crate) const DEFAULT_PRIORITY_HEADER: &str = "x-ballast-priority";

const MAX_PRIORITY_CLASSES: usize = 16;
const MAX_VALUES: usize = 256;

/// The class called `name`, or an error at `path` listing the classes.
pub(super) fn class_named(
    priority: &PriorityClasses,
    name: &str,
    path: &Path<'_>,
) -> Result<PriorityId, Failure> {
    priority
        .classes
        .iter()
        .position(|c| c == name)
        .map(PriorityId)
        .ok_or_else(|| {
            path.error(format!(
                "`{name}` is not one of the classes ({})",
                priority.classes.join(", ")
            ))
        })
}

pub(super) fn build(raw: Option<Fields<'_>>, path: &Path<'_>) -> Result<PriorityClasses, Failure> {
    let Some(raw) = raw else {
        return Ok(PriorityClasses {
            classes: DEFAULT_PRIORITY_CLASSES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            default: PriorityId(
                DEFAULT_PRIORITY_CLASSES
                    .iter()
                    .position(|c| *c == DEFAULT_PRIORITY)
                    .unwrap_or(0),
            ),
            header: DEFAULT_PRIORITY_HEADER.to_string(),
            values: Vec::new(),
        });
    };
    let classes_path = path.field("classes");
    let names: Vec<String> = raw
        .list("classes")
        .iter()
        .map(|name| shape::text(name).to_string())
        .collect();
    if names.is_empty() {
        return Err(classes_path.error("must name at least one class"));
    }
    if names.len() > MAX_PRIORITY_CLASSES {
        return Err(classes_path.error(format!("at most {MAX_PRIORITY_CLASSES} classes")));
    }
    for (index, class) in names.iter().enumerate() {
        let class_path = classes_path.index(index);
        check_name(class).map_err(|reason| class_path.error(reason))?;
        if names
            .get(..index)
            .is_some_and(|before| before.contains(class))
        {
            return Err(class_path.error(format!("duplicate class `{class}`")));
        }
    }
    let header = match raw.str("header") {
        None => DEFAULT_PRIORITY_HEADER.to_string(),
        Some(header) => {
            checks::header_name(header).map_err(|reason| path.field("header").error(reason))?;
            header.to_string()
        }
    };
    let mut classes = PriorityClasses {
        default: PriorityId(names.len() - 1),
        classes: names,
        header,
        values: Vec::new(),
    };
    if let Some(name) = raw.str("default") {
        classes.default = class_named(&classes, name, &path.field("default"))?;
    }
    let values_path = path.field("values");
    let values = raw.named("values");
    if values.len() > MAX_VALUES {
        return Err(values_path.error(format!("at most {MAX_VALUES} values")));
    }
    for (key, class) in values {
        let value_path = values_path.field(key);
        let matcher = ValueMatch::parse(key).map_err(|reason| value_path.error(reason))?;
        if let ValueMatch::Exact(text) = &matcher {
            if classes.classes.contains(text) {
                return Err(value_path.error(format!(
                    "`{text}` is a class name, which already names its class"
                )));
            }
        }
        if let ValueMatch::Range(low, high) = matcher {
            let overlapping = classes.values.iter().find_map(|(other, _)| match other {
                ValueMatch::Range(a, b) if low <= *b && *a <= high => Some((*a, *b)),
                _ => None,
            });
            if let Some((a, b)) = overlapping {
                return Err(value_path.error(format!("overlaps the range {a}-{b}")));
            }
        }
        let id = class_named(&classes, shape::text(class), &value_path)?;
        classes.values.push((matcher, id));
    }
    Ok(classes)
}
