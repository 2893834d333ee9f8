//! The CRD's CEL expressions (`rule`, `messageExpression`) compiled from their text by the `cel`
//! crate and run with `self` bound to the value they are attached to, as the API server does.
//!
//! Why an interpreter and not Rust per rule: nothing here knows a particular rule, so a CRD update
//! that only changes rules needs no code. What it cannot check is reported instead of passed: an
//! expression the parser refuses, or one calling a function that neither CEL's standard library
//! nor the Kubernetes functions of `cel_urls` declare (the crate only finds an undeclared function
//! when a call runs, so every call in the expression is looked up when it is compiled).

use crate::cel_urls;
use cel::objects::{Key, Map, Opaque, OptionalValue};
use cel::{Context, Env, Program, Value as CelValue};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The CEL environment of a CRD's validation rules, and every expression compiled in it.
pub(crate) struct CelRules {
    env: Arc<Env>,
    /// The standard library plus Kubernetes' URL functions; each evaluation binds `self` in a
    /// scope of its own.
    context: Context<'static, 'static>,
    /// Source text → the program, or why it cannot run (the parser's or the lookup's words).
    compiled: BTreeMap<String, Result<Program, String>>,
}

impl CelRules {
    pub(crate) fn new() -> CelRules {
        let env = Arc::new(Env::stdlib());
        let mut context = Context::with_env(Arc::clone(&env));
        if let Err(e) = cel_urls::register(&mut context) {
            panic!("the Kubernetes URL functions cannot be added to the CEL context: {e}");
        }
        CelRules {
            env,
            context,
            compiled: BTreeMap::new(),
        }
    }

    /// Compiles `source` once; `Err` says why it cannot be evaluated.
    pub(crate) fn compile(&mut self, source: &str) -> Result<(), String> {
        if !self.compiled.contains_key(source) {
            let outcome = self.compile_new(source);
            self.compiled.insert(source.to_string(), outcome);
        }
        self.program(source).map(|_| ())
    }

    fn compile_new(&self, source: &str) -> Result<Program, String> {
        let program = self
            .env
            .compile(source)
            .map_err(|e| format!("does not compile: {e}"))?;
        let references = program.references();
        let mut unknown: Vec<&str> = references
            .functions()
            .into_iter()
            .filter(|f| !self.declares(f))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(format!(
                "calls functions this CEL environment does not declare: {}",
                unknown.join(", ")
            ));
        }
        Ok(program)
    }

    /// Whether a call to `function` can be resolved.
    fn declares(&self, function: &str) -> bool {
        // Operators (`_+_`, `!_`, `@in`, `_?_:_`, ...) are the interpreter's own.
        if !function.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return true;
        }
        if cel_urls::FUNCTIONS.contains(&function) {
            return true;
        }
        // The standard library's: `add_function` refuses exactly the names its `Env` declares
        // (`DeclarationError::OverloadConflict`), and the crate offers no other public lookup.
        let mut probe = Context::with_env(Arc::clone(&self.env));
        probe.add_function(function, || false).is_err()
    }

    /// The compiled program of `source`, or why there is none.
    pub(crate) fn program(&self, source: &str) -> Result<&Program, String> {
        match self.compiled.get(source) {
            Some(Ok(program)) => Ok(program),
            Some(Err(e)) => Err(e.clone()),
            None => Err("not compiled when the CRD was loaded".into()),
        }
    }

    /// Whether `source` reads `oldSelf` (a transition rule, evaluated only on an update unless
    /// its rule sets `optionalOldSelf`).
    pub(crate) fn uses_old_self(&self, source: &str) -> bool {
        self.program(source)
            .is_ok_and(|p| p.references().has_variable("oldSelf"))
    }

    /// Runs `program` with `self` bound to `value` (typed by its `schema`) and, for a rule with
    /// `optionalOldSelf`, `oldSelf` bound to `optional.none()`: there is no old object on create.
    pub(crate) fn run(
        &self,
        program: &Program,
        value: &Value,
        schema: &Value,
        optional_old_self: bool,
    ) -> Result<CelValue, String> {
        let mut scope = self.context.new_inner_scope();
        scope.add_variable_from_value("self", to_cel(value, schema));
        if optional_old_self {
            let none: Arc<dyn Opaque> = Arc::new(OptionalValue::none());
            scope.add_variable_from_value("oldSelf", CelValue::Opaque(none));
        }
        program.execute(&scope).map_err(|e| e.to_string())
    }
}

/// A manifest value as the API server hands it to CEL: integers stay integers except where the
/// schema says `number` (CEL `double`), and fields set to null are absent (the server prunes
/// them), so `has()` is false for them.
pub(crate) fn to_cel(value: &Value, schema: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) if schema["type"] == "number" => {
            CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(
            items.iter().map(|i| to_cel(i, &schema["items"])).collect(),
        )),
        Value::Object(fields) => {
            let map: HashMap<Key, CelValue> = fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(name, v)| {
                    let field_schema = match schema["properties"].get(name) {
                        Some(s) => s,
                        None => &schema["additionalProperties"],
                    };
                    (Key::from(name.as_str()), to_cel(v, field_schema))
                })
                .collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}
