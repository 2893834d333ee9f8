//! Metrics (`proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric`,
//! `proxy_get_metric`) with Envoy's status codes:
//! - define: type above 2 is BAD_ARGUMENT; each call returns a new id for the same stat;
//! - increment: counter needs offset > 0 (else BAD_ARGUMENT), gauge adds or subtracts,
//!   histogram is BAD_ARGUMENT, unknown id of a counter/gauge type NOT_FOUND;
//! - record: counter adds, gauge sets, histogram records; unknown id NOT_FOUND;
//! - get: counter/gauge value, histogram id BAD_ARGUMENT, unknown id NOT_FOUND.
//!
//! Under the ngx_wasm_module profile (`crate::profile`) a metric is stored as
//! `pw:<filter_name>:<name>`, and each of those misuses traps instead (an unknown type or id,
//! a name too long, incrementing a gauge or histogram, recording a counter, reading a
//! histogram); a counter's increment is not checked for sign.

use wasmtime::Linker;

use super::general::trap;
use super::mem::{put_u32, put_u64, slice, split, HostResult, C, INVALID_MEMORY, OK};
use crate::metrics::MetricType;
use crate::types::Status;
use crate::worker::WorkerState;

const BAD_ARGUMENT: i32 = Status::BadArgument.code();
const NOT_FOUND: i32 = Status::NotFound.code();

fn kind_of(id: u32) -> Option<MetricType> {
    MetricType::from_raw(id & 0x3)
}

fn define(mut c: C<'_>, kind: i32, nptr: i32, nlen: i32, id_ptr: i32) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_define_metric") {
        return Ok(status);
    }
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let Some(name) = slice(mem, nptr, nlen) else {
        return Ok(INVALID_MEMORY);
    };
    let ngx = st.cfg.profile.metrics_trap_on_misuse();
    let Some(kind) = MetricType::from_raw(kind as u32) else {
        if ngx {
            return Err(trap("could not define metric: unknown type"));
        }
        return Ok(BAD_ARGUMENT);
    };
    let name = String::from_utf8_lossy(name);
    let stored = st
        .cfg
        .profile
        .metric_name(&st.cfg.plugin_name, &name)
        .map_err(|message| trap(&message))?;
    let index = st.shared.metrics.define(kind, &stored);
    let slot = kind as usize;
    let id = st.next_metric_id[slot].wrapping_add(4);
    st.next_metric_id[slot] = id;
    st.metric_ids.insert(id, index);
    if !put_u32(mem, id_ptr, id) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

fn increment(mut c: C<'_>, id: i32, offset: i64) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_increment_metric") {
        return Ok(status);
    }
    let st = c.data_mut();
    let id = id as u32;
    if st.cfg.profile.metrics_trap_on_misuse() {
        let stat = ngx_stat(st, id, "increment")?;
        if stat.kind != MetricType::Counter {
            return Err(trap("could not increment metric: metric not a counter"));
        }
        stat.value = stat.value.wrapping_add_signed(offset);
        return Ok(OK);
    }
    let kind = kind_of(id);
    if !matches!(kind, Some(MetricType::Counter | MetricType::Gauge)) {
        return Ok(BAD_ARGUMENT);
    }
    let Some(index) = st.metric_ids.get(&id).copied() else {
        return Ok(NOT_FOUND);
    };
    let Some(stat) = st.shared.metrics.stats.get_mut(index) else {
        return Ok(NOT_FOUND);
    };
    if kind == Some(MetricType::Counter) {
        if offset <= 0 {
            return Ok(BAD_ARGUMENT);
        }
        stat.value = stat.value.wrapping_add(offset.unsigned_abs());
    } else if offset > 0 {
        stat.value = stat.value.wrapping_add(offset.unsigned_abs());
    } else {
        stat.value = stat.value.wrapping_sub(offset.unsigned_abs());
    }
    Ok(OK)
}

fn record(mut c: C<'_>, id: i32, value: i64) -> HostResult {
    if let Some(status) = super::injected(&mut c, "proxy_record_metric") {
        return Ok(status);
    }
    let st = c.data_mut();
    let id = id as u32;
    let value = value as u64;
    if st.cfg.profile.metrics_trap_on_misuse() {
        let stat = ngx_stat(st, id, "record value in")?;
        if stat.kind == MetricType::Counter {
            return Err(trap(
                "could not record value in metric: metric is a counter",
            ));
        }
    }
    let (Some(kind), Some(index)) = (kind_of(id), st.metric_ids.get(&id).copied()) else {
        return Ok(NOT_FOUND);
    };
    match kind {
        MetricType::Counter => match st.shared.metrics.stats.get_mut(index) {
            Some(stat) => stat.value = stat.value.wrapping_add(value),
            None => return Ok(NOT_FOUND),
        },
        MetricType::Gauge => match st.shared.metrics.stats.get_mut(index) {
            Some(stat) => stat.value = value,
            None => return Ok(NOT_FOUND),
        },
        MetricType::Histogram => st.shared.metrics.record_histogram(index, value),
    }
    Ok(OK)
}

fn get(mut c: C<'_>, id: i32, result_ptr: i32) -> HostResult {
    let Some((mem, st)) = split(&mut c) else {
        return Ok(INVALID_MEMORY);
    };
    let id = id as u32;
    if st.cfg.profile.metrics_trap_on_misuse() {
        let stat = ngx_stat(st, id, "retrieve")?;
        if stat.kind == MetricType::Histogram {
            return Err(trap("could not retrieve metric: metric is a histogram"));
        }
    }
    if !matches!(kind_of(id), Some(MetricType::Counter | MetricType::Gauge)) {
        return Ok(BAD_ARGUMENT);
    }
    let Some(value) = st
        .metric_ids
        .get(&id)
        .and_then(|i| st.shared.metrics.stats.get(*i))
        .map(|s| s.value)
    else {
        return Ok(NOT_FOUND);
    };
    if !put_u64(mem, result_ptr, value) {
        return Ok(INVALID_MEMORY);
    }
    Ok(OK)
}

/// The stat behind `id` under the ngx_wasm_module profile, which traps on an unknown id.
fn ngx_stat<'a>(
    st: &'a mut WorkerState,
    id: u32,
    verb: &str,
) -> Result<&'a mut crate::metrics::Stat, wasmtime::Error> {
    let index = st.metric_ids.get(&id).copied();
    index
        .and_then(|i| st.shared.metrics.stats.get_mut(i))
        .ok_or_else(|| {
            trap(&format!(
                "could not {verb} metric id \"{id}\": metric not found"
            ))
        })
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    l.func_wrap("env", "proxy_define_metric", define)?;
    l.func_wrap("env", "proxy_increment_metric", increment)?;
    l.func_wrap("env", "proxy_record_metric", record)?;
    l.func_wrap("env", "proxy_get_metric", get)?;
    Ok(())
}
