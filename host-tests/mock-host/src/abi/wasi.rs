//! The WASI preview1 subset Envoy provides (proxy-wasm-cpp-host `exports.cc`), without
//! wasmtime-wasi: stdout/stderr become captured log lines (info/error, one trailing newline
//! removed), clocks read the virtual clock, `random_get` is a seeded PRNG so runs repeat,
//! environment and arguments are empty unless the test sets environment variables, files do
//! not exist, and `proc_exit` traps (Envoy fails the VM).

use wasmtime::Linker;

use super::mem::{put_bytes, put_u32, put_u64, slice, split, C};
use crate::types::LogLevel;
use crate::worker::WorkerState;

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOENT: i32 = 44;
const NOSYS: i32 = 52;
const NOTSUP: i32 = 58;

/// proxy-wasm-cpp-host refuses larger `random_get` requests.
const RANDOM_GET_MAX: u32 = 64 * 1024;

fn fd_write(mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten_ptr: i32) -> i32 {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return BADF,
    };
    let Some((mem, st)) = split(&mut c) else {
        return FAULT;
    };
    let mut text = std::mem::take(&mut st.scratch);
    text.clear();
    for i in 0..(iovs_len as u32) {
        let at = (iovs as u32).wrapping_add(i.wrapping_mul(8)) as i32;
        let Some(iov) = slice(mem, at, 8) else {
            st.scratch = text;
            return FAULT;
        };
        let buf = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        if len != 0 {
            let Some(data) = slice(mem, buf, len) else {
                st.scratch = text;
                return FAULT;
            };
            text.extend_from_slice(data);
        }
    }
    let written = text.len();
    if written > 0 {
        let msg = text.strip_suffix(b"\n").unwrap_or(&text);
        let ctx = st.ctx();
        let worker = st.index;
        st.shared.log(worker, ctx, level, msg);
    }
    st.scratch = text;
    if !put_u32(
        mem,
        nwritten_ptr,
        u32::try_from(written).unwrap_or(u32::MAX),
    ) {
        return FAULT;
    }
    SUCCESS
}

fn clock_time_get(mut c: C<'_>, id: i32, _precision: i64, result_ptr: i32) -> i32 {
    let Some((mem, st)) = split(&mut c) else {
        return FAULT;
    };
    let now = match id {
        0 => st.shared.clock.realtime_ns(),
        1 => st.shared.clock.monotonic_ns(),
        _ => return NOTSUP,
    };
    if put_u64(mem, result_ptr, now) {
        SUCCESS
    } else {
        FAULT
    }
}

fn clock_res_get(mut c: C<'_>, id: i32, result_ptr: i32) -> i32 {
    if id != 0 && id != 1 {
        return NOTSUP;
    }
    let Some((mem, _)) = split(&mut c) else {
        return FAULT;
    };
    if put_u64(mem, result_ptr, 1) {
        SUCCESS
    } else {
        FAULT
    }
}

fn random_get(mut c: C<'_>, buf: i32, len: i32) -> i32 {
    let len = len as u32;
    if len > RANDOM_GET_MAX {
        return INVAL;
    }
    if len == 0 {
        return SUCCESS;
    }
    let Some((mem, st)) = split(&mut c) else {
        return FAULT;
    };
    let mut bytes = std::mem::take(&mut st.scratch);
    bytes.clear();
    while bytes.len() < len as usize {
        bytes.extend_from_slice(&st.next_random().to_le_bytes());
    }
    bytes.truncate(len as usize);
    let ok = put_bytes(mem, buf, &bytes);
    st.scratch = bytes;
    if ok {
        SUCCESS
    } else {
        FAULT
    }
}

fn environ_sizes_get(mut c: C<'_>, count_ptr: i32, size_ptr: i32) -> i32 {
    let Some((mem, st)) = split(&mut c) else {
        return FAULT;
    };
    let count = st.cfg.env.len();
    let size: usize = st.cfg.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if put_u32(mem, count_ptr, count as u32) && put_u32(mem, size_ptr, size as u32) {
        SUCCESS
    } else {
        FAULT
    }
}

fn environ_get(mut c: C<'_>, array_ptr: i32, buf_ptr: i32) -> i32 {
    let Some((mem, st)) = split(&mut c) else {
        return FAULT;
    };
    let mut array = array_ptr as u32;
    let mut buf = buf_ptr as u32;
    for (k, v) in &st.cfg.env {
        let entry = format!("{k}={v}\0");
        if !put_u32(mem, array as i32, buf) || !put_bytes(mem, buf as i32, entry.as_bytes()) {
            return FAULT;
        }
        buf = buf.wrapping_add(entry.len() as u32);
        array = array.wrapping_add(4);
    }
    SUCCESS
}

fn args_sizes_get(mut c: C<'_>, argc_ptr: i32, size_ptr: i32) -> i32 {
    let Some((mem, _)) = split(&mut c) else {
        return FAULT;
    };
    if put_u32(mem, argc_ptr, 0) && put_u32(mem, size_ptr, 0) {
        SUCCESS
    } else {
        FAULT
    }
}

fn fd_fdstat_get(mut c: C<'_>, fd: i32, stat_ptr: i32) -> i32 {
    if fd != 1 && fd != 2 {
        return BADF;
    }
    let Some((mem, _)) = split(&mut c) else {
        return FAULT;
    };
    let mut stat = [0u8; 24];
    stat[8..16].copy_from_slice(&64u64.to_le_bytes()); // rights: FD_WRITE
    if put_bytes(mem, stat_ptr, &stat) {
        SUCCESS
    } else {
        FAULT
    }
}

fn stdio_only(fd: i32) -> i32 {
    if fd == 1 || fd == 2 {
        SUCCESS
    } else {
        BADF
    }
}

fn poll_oneoff(mut c: C<'_>, _in: i32, _out: i32, _n: i32, nevents_ptr: i32) -> i32 {
    let Some((mem, _)) = split(&mut c) else {
        return FAULT;
    };
    if put_u32(mem, nevents_ptr, 0) {
        SUCCESS
    } else {
        FAULT
    }
}

pub(crate) fn register(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    let m = "wasi_snapshot_preview1";
    l.func_wrap(m, "fd_write", fd_write)?;
    l.func_wrap(m, "clock_time_get", clock_time_get)?;
    l.func_wrap(m, "clock_res_get", clock_res_get)?;
    l.func_wrap(m, "random_get", random_get)?;
    l.func_wrap(m, "environ_sizes_get", environ_sizes_get)?;
    l.func_wrap(m, "environ_get", environ_get)?;
    l.func_wrap(m, "args_sizes_get", args_sizes_get)?;
    l.func_wrap(m, "args_get", |_c: C<'_>, _argv: i32, _buf: i32| SUCCESS)?;
    l.func_wrap(m, "fd_fdstat_get", fd_fdstat_get)?;
    l.func_wrap(
        m,
        "fd_read",
        |_c: C<'_>, _fd: i32, _iovs: i32, _n: i32, _nread: i32| NOSYS,
    )?;
    l.func_wrap(
        m,
        "fd_seek",
        |_c: C<'_>, _fd: i32, _off: i64, _wh: i32, _new: i32| SUCCESS,
    )?;
    l.func_wrap(m, "fd_close", |_c: C<'_>, _fd: i32| SUCCESS)?;
    l.func_wrap(m, "fd_prestat_get", |_c: C<'_>, _fd: i32, _buf: i32| BADF)?;
    l.func_wrap(
        m,
        "fd_prestat_dir_name",
        |_c: C<'_>, _fd: i32, _p: i32, _n: i32| NOSYS,
    )?;
    l.func_wrap(m, "fd_filestat_get", |_c: C<'_>, _fd: i32, _buf: i32| BADF)?;
    l.func_wrap(m, "fd_fdstat_set_flags", |_c: C<'_>, _fd: i32, _f: i32| {
        NOSYS
    })?;
    l.func_wrap(m, "fd_sync", |_c: C<'_>, fd: i32| stdio_only(fd))?;
    l.func_wrap(m, "fd_datasync", |_c: C<'_>, fd: i32| stdio_only(fd))?;
    l.func_wrap(
        m,
        "fd_tell",
        |_c: C<'_>, fd: i32, _ptr: i32| {
            if fd == 1 || fd == 2 {
                NOTSUP
            } else {
                BADF
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_pread",
        |_c: C<'_>, _fd: i32, _i: i32, _n: i32, _o: i64, _r: i32| NOSYS,
    )?;
    l.func_wrap(
        m,
        "fd_readdir",
        |_c: C<'_>, _fd: i32, _b: i32, _n: i32, _k: i64, _r: i32| BADF,
    )?;
    l.func_wrap(
        m,
        "path_open",
        |_c: C<'_>,
         _fd: i32,
         _df: i32,
         _p: i32,
         _pl: i32,
         _of: i32,
         _rb: i64,
         _ri: i64,
         _ff: i32,
         _r: i32| { NOENT },
    )?;
    l.func_wrap(
        m,
        "path_filestat_get",
        |_c: C<'_>, _fd: i32, _f: i32, _p: i32, _pl: i32, _b: i32| NOTSUP,
    )?;
    l.func_wrap(
        m,
        "path_create_directory",
        |_c: C<'_>, _fd: i32, _p: i32, _n: i32| NOTSUP,
    )?;
    l.func_wrap(
        m,
        "path_remove_directory",
        |_c: C<'_>, _fd: i32, _p: i32, _n: i32| NOTSUP,
    )?;
    l.func_wrap(
        m,
        "path_unlink_file",
        |_c: C<'_>, _fd: i32, _p: i32, _n: i32| NOTSUP,
    )?;
    l.func_wrap(m, "poll_oneoff", poll_oneoff)?;
    l.func_wrap(m, "sched_yield", |_c: C<'_>| SUCCESS)?;
    l.func_wrap(
        m,
        "proc_exit",
        |_c: C<'_>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "wasi proc_exit({code}) called: Envoy fails the VM"
            )))
        },
    )?;
    Ok(())
}
