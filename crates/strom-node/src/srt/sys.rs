//! libsrt (Haivision SRT 1.5) through its C API, opened at run time: the
//! one place in strom with `unsafe` code.
//!
//! Why not a Rust SRT crate: `srt-tokio` 0.4.4 (the newest, unchanged since
//! May 2024) panics its listener task on a caller whose encryption does not
//! match (`unimplemented!` in its handshake), which a stranger can trigger,
//! and it reports no round-trip time, loss or receive buffer.
//!
//! # Loading
//!
//! strom does not link libsrt, so it builds without libsrt's headers and
//! runs on a machine without libsrt; only SRT needs it. The first SRT use
//! (a listener bound, an `srt://` input calling) opens the library with
//! `dlopen` (the `libloading` crate), checks its version and resolves every
//! function this module calls into an [`Api`] of typed function pointers,
//! once per process. Names tried, in order ([`SONAMES`]): Debian 12 ships
//! the OpenSSL flavour as `libsrt.so.1.5` (package `libsrt1.5-openssl`) and
//! the GnuTLS one as `libsrt-gnutls.so.1.5` (`libsrt1.5-gnutls`); other
//! builds may name the OpenSSL flavour `libsrt-openssl.so.1.5`; `libsrt.so`
//! is the development symlink, whatever version it points to. When the
//! environment variable `STROM_LIBSRT` is set, that name or path is the
//! only one tried. A library older than 1.5, or of another major version,
//! is refused. When no library loads, every SRT call fails at once with an
//! error ([`Error::is_unavailable`]) that names the package to install
//! (`apt-get install libsrt1.5-openssl`); the outcome is kept for the
//! process, so strom must be restarted after installing it.
//!
//! # Buffers
//!
//! Every socket strom opens, listener or caller, gets the same pre-bind
//! options before `bind`/`connect` ([`FLOW_WINDOW_PACKETS`] for the
//! flow-control window and receive buffer, [`UDP_RECEIVE_BUFFER`] for the
//! UDP socket), and a listener's accepted connections inherit them. libsrt
//! reports the options it was given, not what the kernel granted (it does
//! not expose its UDP socket), so a kernel cap is found by comparing with
//! `net.core.rmem_max` and logged once per process.
//!
//! # Soundness
//!
//! - Opening the library runs its initializers; only libsrt's own names
//!   (or the operator's `STROM_LIBSRT`) are opened, the same trust as
//!   linking it.
//! - Every function pointer's type is transcribed from `srt.h` of libsrt
//!   1.5.1 (`SRTSOCKET` is `int32_t`; the enums `SRT_SOCKOPT` and
//!   `SRT_SOCKSTATUS` are `int`; callbacks as `srt_listen_callback_fn` and
//!   `SRT_LOG_HANDLER_FN`). These signatures are those of every 1.x release
//!   from 1.5 on; the version check (`srt_getversion()`, `uint32_t (void)`)
//!   refuses any other library before another of its functions is called,
//!   and a library without that symbol is no libsrt at all.
//! - The `Library` is leaked once it passed the checks (`&'static`, never
//!   `dlclose`d), so the copied function pointers, the log handler and the
//!   listen hooks installed in it stay valid for the process lifetime, as
//!   libsrt's own threads do. A library refused by the checks is closed
//!   again; of it only `srt_getversion` ran, which starts nothing.
//! - An SRT socket is an integer id, not a pointer. libsrt looks every id up
//!   in its own table and answers `SRT_EINVSOCK` for one it does not know
//!   (closed, never opened), so calling it with any id, from any thread, at
//!   any time, is memory-safe; libsrt's API is thread-safe (one thread may
//!   close a socket another is blocked on, which wakes it).
//! - Every buffer handed to libsrt is a live Rust buffer with its true
//!   length (`recv`, options, addresses); libsrt writes at most that many
//!   bytes. Address buffers are `socket2`'s `sockaddr_storage`.
//! - Statistics: libsrt fills a `SRT_TRACEBSTATS`. Ours is transcribed from
//!   `srt.h` 1.5.1 and sits in front of 1 KiB of slack, so a header of a
//!   later libsrt with more fields writes into the slack, never past the
//!   buffer. Every field is a plain integer or float, valid for any bits.
//! - Strings from libsrt (`srt_getlasterror_str`, the streamid given to the
//!   listen hook, log lines) are NUL-terminated and copied at once; the
//!   hook's streamid lives in a 513-byte zeroed buffer of libsrt's for the
//!   call.
//! - The listen hook's opaque pointer is a leaked `&'static HookSlot` (one
//!   small allocation per listener ever bound), so libsrt may call the hook
//!   from its own thread at any time, even during or after `srt_close`,
//!   without a dangling pointer. Closing the listener empties the slot (the
//!   hook then rejects), which releases what the callback held.
//! - The hook and the log handler never unwind into C: their Rust code runs
//!   under `catch_unwind`. The log handler is a plain function with no
//!   state (null opaque pointer).

#![allow(unsafe_code)]

use socket2::{SockAddr, SockAddrStorage};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// `SRTSOCKET` (`int32_t`).
type RawSocket = i32;
const INVALID_SOCK: RawSocket = -1;
const SRT_ERROR: c_int = -1;

// SRT_SOCKOPT values (srt.h).
const SRTO_RCVSYN: c_int = 2;
const SRTO_FC: c_int = 4;
const SRTO_RCVBUF: c_int = 6;
const SRTO_UDP_RCVBUF: c_int = 9;
const SRTO_RCVTIMEO: c_int = 14;
const SRTO_LATENCY: c_int = 23;
const SRTO_PASSPHRASE: c_int = 26;
const SRTO_STREAMID: c_int = 46;
const SRTO_TRANSTYPE: c_int = 50;
const SRTO_CONNTIMEO: c_int = 36;
const SRTO_ENFORCEDENCRYPTION: c_int = 53;
const SRTO_IPV6ONLY: c_int = 54;
/// `SRTT_LIVE` of `SRT_TRANSTYPE`.
const SRTT_LIVE: c_int = 0;

// SRT_SOCKSTATUS values.
const SRTS_CONNECTED: c_int = 5;

// Error codes (SRT_ERRNO): MJ_AGAIN * 1000 + MN_XMTIMEOUT, and the
// connection-setup ones.
const SRT_ETIMEOUT: c_int = 6003;
const SRT_ECONNREJ: c_int = 1002;
const SRT_ENOSERVER: c_int = 1001;

/// How long `recv` blocks before a reader may look whether its consumer
/// is gone.
const RECV_WAIT: Duration = Duration::from_millis(500);

/// Longest streamid libsrt carries (`CSrtConfig::MAX_SID_LENGTH`), bytes.
pub const MAX_STREAMID: usize = 512;

/// SRT receive buffer and flow-control window (`SRTO_RCVBUF`, `SRTO_FC`),
/// packets. libsrt's default buffer (8192 packets, about 86 Mbit of 1316-byte
/// payloads: 1 s of latency at 80 Mbit/s) with the window cut from libsrt's
/// 25600 to the same 8192: libsrt never lets more than the smaller of the
/// two be in flight anyway (it advertises `min(RCVBUF, FC)` in the
/// handshake), but it sizes each connection's receiver loss list by `FC`,
/// so this takes ~16 bytes × 17408 off every connection: ~480 KB each
/// instead of ~760 KB (RSS measured with libsrt 1.5.1, callers with
/// libsrt's defaults; the caller's own window does not change it). libsrt
/// 1.5 requires `RCVBUF ≤ FC × (MSS − 28)` and silently cuts a larger one,
/// so `FC` is set first.
pub const FLOW_WINDOW_PACKETS: usize = 8192;

/// Bytes per packet libsrt counts in `SRTO_RCVBUF`: MSS 1500 minus the 28
/// bytes of the IPv4 and UDP headers.
const RCVBUF_BYTES_PER_PACKET: usize = 1500 - 28;

/// The UDP socket's receive buffer (`SRTO_UDP_RCVBUF`, `SO_RCVBUF`), bytes:
/// what the kernel may queue for libsrt's receiver thread, shared by every
/// connection of a listener (one UDP socket per port). Raised above
/// libsrt's default (8192 × 1500 bytes) so a burst of a flood, or of a
/// publisher's retransmissions, waits in the kernel instead of being
/// dropped there: 16 MiB is ~11,000 full-size datagrams, ~130 ms of a
/// 90,000 packets/s flood. The kernel caps it at `net.core.rmem_max`;
/// [`note_kernel_cap`] says so once.
pub const UDP_RECEIVE_BUFFER: usize = 16 << 20;

/// `SRT_TRACEBSTATS` (`struct CBytePerfMon`), srt.h of libsrt 1.5.1.
#[repr(C)]
#[derive(Clone, Copy)]
struct PerfMon {
    ms_time_stamp: i64,
    pkt_sent_total: i64,
    pkt_recv_total: i64,
    pkt_snd_loss_total: c_int,
    pkt_rcv_loss_total: c_int,
    pkt_retrans_total: c_int,
    pkt_sent_ack_total: c_int,
    pkt_recv_ack_total: c_int,
    pkt_sent_nak_total: c_int,
    pkt_recv_nak_total: c_int,
    us_snd_duration_total: i64,
    pkt_snd_drop_total: c_int,
    pkt_rcv_drop_total: c_int,
    pkt_rcv_undecrypt_total: c_int,
    byte_sent_total: u64,
    byte_recv_total: u64,
    byte_rcv_loss_total: u64,
    byte_retrans_total: u64,
    byte_snd_drop_total: u64,
    byte_rcv_drop_total: u64,
    byte_rcv_undecrypt_total: u64,
    // local measurements (since the last clear)
    pkt_sent: i64,
    pkt_recv: i64,
    pkt_snd_loss: c_int,
    pkt_rcv_loss: c_int,
    pkt_retrans: c_int,
    pkt_rcv_retrans: c_int,
    pkt_sent_ack: c_int,
    pkt_recv_ack: c_int,
    pkt_sent_nak: c_int,
    pkt_recv_nak: c_int,
    mbps_send_rate: f64,
    mbps_recv_rate: f64,
    us_snd_duration: i64,
    pkt_reorder_distance: c_int,
    pkt_rcv_avg_belated_time: f64,
    pkt_rcv_belated: i64,
    pkt_snd_drop: c_int,
    pkt_rcv_drop: c_int,
    pkt_rcv_undecrypt: c_int,
    byte_sent: u64,
    byte_recv: u64,
    byte_rcv_loss: u64,
    byte_retrans: u64,
    byte_snd_drop: u64,
    byte_rcv_drop: u64,
    byte_rcv_undecrypt: u64,
    // instant measurements
    us_pkt_snd_period: f64,
    pkt_flow_window: c_int,
    pkt_congestion_window: c_int,
    pkt_flight_size: c_int,
    ms_rtt: f64,
    mbps_bandwidth: f64,
    byte_avail_snd_buf: c_int,
    byte_avail_rcv_buf: c_int,
    mbps_max_bw: f64,
    byte_mss: c_int,
    pkt_snd_buf: c_int,
    byte_snd_buf: c_int,
    ms_snd_buf: c_int,
    ms_snd_tsb_pd_delay: c_int,
    pkt_rcv_buf: c_int,
    byte_rcv_buf: c_int,
    ms_rcv_buf: c_int,
    ms_rcv_tsb_pd_delay: c_int,
    pkt_snd_filter_extra_total: c_int,
    pkt_rcv_filter_extra_total: c_int,
    pkt_rcv_filter_supply_total: c_int,
    pkt_rcv_filter_loss_total: c_int,
    pkt_snd_filter_extra: c_int,
    pkt_rcv_filter_extra: c_int,
    pkt_rcv_filter_supply: c_int,
    pkt_rcv_filter_loss: c_int,
    pkt_reorder_tolerance: c_int,
    // 1.5.0
    pkt_sent_unique_total: i64,
    pkt_recv_unique_total: i64,
    byte_sent_unique_total: u64,
    byte_recv_unique_total: u64,
    pkt_sent_unique: i64,
    pkt_recv_unique: i64,
    byte_sent_unique: u64,
    byte_recv_unique: u64,
}

/// [`PerfMon`] and room for fields a newer libsrt may append.
#[repr(C)]
struct PerfMonBuf {
    perf: PerfMon,
    _slack: [u8; 1024],
}

/// `srt_listen_callback_fn`.
type ListenHookFn = unsafe extern "C" fn(
    opaque: *mut c_void,
    ns: RawSocket,
    hs_version: c_int,
    peer: *const c_void,
    streamid: *const c_char,
) -> c_int;

/// libsrt's functions strom calls, resolved from the loaded library; each
/// type is transcribed from `srt.h` 1.5.1 (see the module's soundness notes).
struct Api {
    /// The name the library was opened by.
    soname: String,
    startup: unsafe extern "C" fn() -> c_int,
    getversion: unsafe extern "C" fn() -> u32,
    create_socket: unsafe extern "C" fn() -> RawSocket,
    bind: unsafe extern "C" fn(u: RawSocket, name: *const c_void, namelen: c_int) -> c_int,
    listen: unsafe extern "C" fn(u: RawSocket, backlog: c_int) -> c_int,
    accept: unsafe extern "C" fn(u: RawSocket, addr: *mut c_void, addrlen: *mut c_int) -> RawSocket,
    listen_callback: unsafe extern "C" fn(lsn: RawSocket, hook: Option<ListenHookFn>, opaque: *mut c_void) -> c_int,
    connect: unsafe extern "C" fn(u: RawSocket, name: *const c_void, namelen: c_int) -> c_int,
    close: unsafe extern "C" fn(u: RawSocket) -> c_int,
    getpeername: unsafe extern "C" fn(u: RawSocket, name: *mut c_void, namelen: *mut c_int) -> c_int,
    getsockflag: unsafe extern "C" fn(u: RawSocket, opt: c_int, optval: *mut c_void, optlen: *mut c_int) -> c_int,
    setsockflag: unsafe extern "C" fn(u: RawSocket, opt: c_int, optval: *const c_void, optlen: c_int) -> c_int,
    recvmsg: unsafe extern "C" fn(u: RawSocket, buf: *mut c_char, len: c_int) -> c_int,
    getlasterror: unsafe extern "C" fn(errno_loc: *mut c_int) -> c_int,
    getlasterror_str: unsafe extern "C" fn() -> *const c_char,
    bstats: unsafe extern "C" fn(u: RawSocket, perf: *mut PerfMonBuf, clear: c_int) -> c_int,
    getsockstate: unsafe extern "C" fn(u: RawSocket) -> c_int,
    setrejectreason: unsafe extern "C" fn(u: RawSocket, value: c_int) -> c_int,
    getrejectreason: unsafe extern "C" fn(u: RawSocket) -> c_int,
    setloglevel: unsafe extern "C" fn(level: c_int),
    setlogflags: unsafe extern "C" fn(flags: c_int),
    setloghandler: unsafe extern "C" fn(opaque: *mut c_void, handler: Option<LogHandlerFn>),
    #[cfg(test)]
    getsockname: unsafe extern "C" fn(u: RawSocket, name: *mut c_void, namelen: *mut c_int) -> c_int,
    #[cfg(test)]
    sendmsg: unsafe extern "C" fn(u: RawSocket, buf: *const c_char, len: c_int, ttl: c_int, inorder: c_int) -> c_int,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "libsrt ({})", self.soname)
    }
}

/// The names libsrt is looked for under, in order (see the module docs).
pub const SONAMES: [&str; 4] = [
    "libsrt-openssl.so.1.5",
    "libsrt.so.1.5",
    "libsrt-gnutls.so.1.5",
    "libsrt.so",
];

/// An environment variable naming the one library (name or path) to open
/// instead of [`SONAMES`].
pub const LIBRARY_ENV: &str = "STROM_LIBSRT";

/// What to install when libsrt is missing (Debian 12 and later).
pub const INSTALL_HINT: &str = "install libsrt 1.5 (Debian: apt-get install libsrt1.5-openssl) and restart strom";

/// Oldest libsrt accepted (`srt_getversion()`: major << 16 | minor << 8 | patch).
const MIN_VERSION: u32 = 0x01_05_00;
/// First version refused again (another major may change the ABI).
const NEXT_MAJOR: u32 = 0x02_00_00;

/// `Error::code` of "libsrt could not be loaded" (libsrt's own codes are
/// never below -1).
const UNAVAILABLE: i32 = -2;

fn version_text(v: u32) -> String {
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Accepts libsrt versions from 1.5 up to, not including, 2.0.
fn check_version(v: u32) -> Result<(), String> {
    if (MIN_VERSION..NEXT_MAJOR).contains(&v) {
        Ok(())
    } else {
        Err(format!("version {} (1.5 or a later 1.x needed)", version_text(v)))
    }
}

/// A libloading error with the loader's own reason (`dlerror`).
fn loader_text(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(why) => why.to_string(),
        None => e.to_string(),
    }
}

/// Copies the function `name` (NUL-terminated) out of `lib`.
///
/// # Safety
///
/// `T` must be the function pointer type of `name` in the C header, and
/// `lib` must stay loaded as long as the result is used.
unsafe fn symbol<T: Copy>(lib: &libloading::Library, name: &'static [u8]) -> Result<T, String> {
    // SAFETY: the caller's contract.
    match unsafe { lib.get::<T>(name) } {
        Ok(f) => Ok(*f),
        Err(e) => Err(format!(
            "{} missing: {}",
            String::from_utf8_lossy(name.strip_suffix(b"\0").unwrap_or(name)),
            loader_text(&e)
        )),
    }
}

/// Opens `soname`, checks its version and resolves [`Api`]; the library is
/// leaked only when all that succeeded.
fn open(soname: &str) -> Result<&'static Api, String> {
    // SAFETY: runs the initializers of a library named as libsrt (see the
    // module's soundness notes).
    let lib = unsafe { libloading::Library::new(soname) }.map_err(|e| loader_text(&e))?;
    // SAFETY: `srt_getversion` is `uint32_t srt_getversion(void)` in
    // srt.h; `lib` outlives every call of it here.
    let getversion: unsafe extern "C" fn() -> u32 = unsafe { symbol(&lib, b"srt_getversion\0") }?;
    // SAFETY: no arguments, returns a number, starts nothing.
    check_version(unsafe { getversion() })?;
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: each field's type is transcribed from srt.h 1.5.1 and
            // the version was checked; `lib` is leaked below, never unloaded,
            // once every function was found (else it is closed unused).
            unsafe { symbol(&lib, concat!($name, "\0").as_bytes()) }?
        };
    }
    let api = Api {
        soname: soname.to_owned(),
        startup: sym!("srt_startup"),
        getversion,
        create_socket: sym!("srt_create_socket"),
        bind: sym!("srt_bind"),
        listen: sym!("srt_listen"),
        accept: sym!("srt_accept"),
        listen_callback: sym!("srt_listen_callback"),
        connect: sym!("srt_connect"),
        close: sym!("srt_close"),
        getpeername: sym!("srt_getpeername"),
        getsockflag: sym!("srt_getsockflag"),
        setsockflag: sym!("srt_setsockflag"),
        recvmsg: sym!("srt_recvmsg"),
        getlasterror: sym!("srt_getlasterror"),
        getlasterror_str: sym!("srt_getlasterror_str"),
        bstats: sym!("srt_bstats"),
        getsockstate: sym!("srt_getsockstate"),
        setrejectreason: sym!("srt_setrejectreason"),
        getrejectreason: sym!("srt_getrejectreason"),
        setloglevel: sym!("srt_setloglevel"),
        setlogflags: sym!("srt_setlogflags"),
        setloghandler: sym!("srt_setloghandler"),
        #[cfg(test)]
        getsockname: sym!("srt_getsockname"),
        #[cfg(test)]
        sendmsg: sym!("srt_sendmsg"),
    };
    // Never closed: the pointers in `api` stay valid for the process.
    Box::leak(Box::new(lib));
    Ok(&*Box::leak(Box::new(api)))
}

/// Opens the first of `sonames` that is a usable libsrt; the error names
/// each name tried with why it failed, and what to install.
fn load_from(sonames: &[&str]) -> Result<&'static Api, Error> {
    let mut tried = Vec::with_capacity(sonames.len());
    for name in sonames {
        match open(name) {
            Ok(api) => return Ok(api),
            // dlerror's text usually starts with the name already.
            Err(why) if why.starts_with(name) => tried.push(why),
            Err(why) => tried.push(format!("{name}: {why}")),
        }
    }
    Err(Error {
        call: "load libsrt",
        code: UNAVAILABLE,
        message: format!("no usable libsrt ({}); {INSTALL_HINT}", tried.join("; ")),
        reject: None,
    })
}

/// `SRT_LOG_HANDLER_FN`.
type LogHandlerFn = unsafe extern "C" fn(
    opaque: *mut c_void,
    level: c_int,
    file: *const c_char,
    line: c_int,
    area: *const c_char,
    message: *const c_char,
);

// syslog levels libsrt uses.
const LOG_ERR: c_int = 3;
const LOG_WARNING: c_int = 4;
// SRT_LOGF_*: no time, thread name or end of line (tracing adds its own).
const LOGF_PLAIN: c_int = 1 | 2 | 8;

/// libsrt's log lines (warnings and worse) into `tracing`, target
/// `libsrt`: errors as warnings, at most one per 10 s; warnings (each
/// refused handshake gives some, which strom counts itself) at debug. Its
/// text may quote a peer's streamid, so it is escaped and bounded.
unsafe extern "C" fn log_handler(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    _area: *const c_char,
    message: *const c_char,
) {
    static ERRORS: crate::util::LogLimiter = crate::util::LogLimiter::new(Duration::from_secs(10));
    if message.is_null() {
        return;
    }
    // SAFETY: libsrt passes a NUL-terminated message valid for this call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if level <= LOG_ERR {
            if let Some(held) = ERRORS.allow(std::time::Instant::now()) {
                tracing::warn!(target: "libsrt", similar_held_back = held, "{}", crate::util::peer_text(&text));
            }
        } else {
            tracing::debug!(target: "libsrt", "{}", crate::util::peer_text(&text));
        }
    }));
}

/// libsrt, loaded ([`load_from`] with [`SONAMES`] or `STROM_LIBSRT`) and
/// started once per process (its threads start with the first socket);
/// a failure is kept too.
fn libsrt() -> Result<&'static Api, Error> {
    static LIBSRT: OnceLock<Result<&'static Api, Error>> = OnceLock::new();
    LIBSRT
        .get_or_init(|| {
            let chosen = std::env::var(LIBRARY_ENV).ok().filter(|v| !v.is_empty());
            let api = match &chosen {
                Some(name) => load_from(&[name.as_str()])?,
                None => load_from(&SONAMES)?,
            };
            // SAFETY: numbers, and a handler of libsrt's log handler type
            // that needs no opaque state.
            unsafe {
                (api.setloghandler)(std::ptr::null_mut(), Some(log_handler));
                (api.setlogflags)(LOGF_PLAIN);
                (api.setloglevel)(LOG_WARNING);
            }
            // SAFETY: no arguments; may be called from any thread.
            let r = unsafe { (api.startup)() };
            if r < 0 {
                return Err(Error::last(api, "srt_startup"));
            }
            tracing::info!(library = %api.soname, version = %version_of(api), "libsrt loaded");
            Ok(api)
        })
        .clone()
}

fn version_of(api: &Api) -> String {
    // SAFETY: no arguments, returns a number.
    version_text(unsafe { (api.getversion)() })
}

/// libsrt's version as `major.minor.patch` and the library's name, once
/// loaded; why it is not otherwise.
pub fn version() -> String {
    match libsrt() {
        Ok(api) => format!("{} ({})", version_of(api), api.soname),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// A failed libsrt call: what was called, libsrt's error code
/// (`SRT_ERRNO`) and message, and for a refused connection the peer's
/// rejection reason (`SRT_REJECT_REASON`, or ≥ 1000 an access-control code).
/// When libsrt itself could not be loaded, [`Error::is_unavailable`] and
/// the message names the libraries tried and the package to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub call: &'static str,
    pub code: i32,
    pub message: String,
    pub reject: Option<i32>,
}

impl Error {
    /// The calling thread's last libsrt error.
    fn last(api: &Api, call: &'static str) -> Error {
        // SAFETY: a null errno pointer is allowed; the string is libsrt's
        // thread-local, NUL-terminated, and copied before any other call.
        let (code, message) = unsafe {
            let code = (api.getlasterror)(std::ptr::null_mut());
            let p = (api.getlasterror_str)();
            let message = if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            };
            (code, message)
        };
        Error {
            call,
            code,
            message,
            reject: None,
        }
    }

    fn invalid(call: &'static str, message: &str) -> Error {
        Error {
            call,
            code: -1,
            message: message.to_owned(),
            reject: None,
        }
    }

    /// A receive that timed out (`SRTO_RCVTIMEO`), not a broken connection.
    pub fn is_timeout(&self) -> bool {
        self.code == SRT_ETIMEOUT
    }

    /// The listener refused the connection (see [`Error::reject`]).
    pub fn is_rejected(&self) -> bool {
        self.code == SRT_ECONNREJ
    }

    /// The listener did not answer in time.
    pub fn is_no_server(&self) -> bool {
        self.code == SRT_ENOSERVER
    }

    /// libsrt could not be loaded (missing, too old, or incomplete); the
    /// message says which names were tried and what to install.
    pub fn is_unavailable(&self) -> bool {
        self.code == UNAVAILABLE
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.call, self.message)?;
        if self.code != UNAVAILABLE {
            write!(f, " ({})", self.code)?;
        }
        if let Some(r) = self.reject {
            write!(f, ", reject reason {r}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// One receiver-side statistics sample of a connection: instant values and
/// counts since the previous sample (`srt_bstats` with clear).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Media held in the receive buffer, not yet delivered (`msRcvBuf`).
    pub receive_buffer: Duration,
    /// The latency agreed for the receiver (`msRcvTsbPdDelay`).
    pub latency: Duration,
    /// Data packets found missing (`pktRcvLoss`).
    pub lost: u64,
    /// Retransmitted data packets received (`pktRcvRetrans`).
    pub retransmitted: u64,
    /// Packets dropped as too late to play (`pktRcvDrop`).
    pub dropped: u64,
    /// Packets that could not be decrypted (`pktRcvUndecrypt`).
    pub undecrypted: u64,
    /// Bytes received since the previous sample (`byteRecv`).
    pub bytes: u64,
}

fn ms(v: f64) -> Duration {
    if v.is_finite() && v > 0.0 {
        Duration::from_secs_f64((v / 1000.0).min(86_400.0))
    } else {
        Duration::ZERO
    }
}

fn count(v: c_int) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Where Linux keeps the largest `SO_RCVBUF` an unprivileged socket gets,
/// bytes.
const RMEM_MAX: &str = "/proc/sys/net/core/rmem_max";

/// Whether Linux gives a socket less receive buffer than `requested` bytes
/// when `net.core.rmem_max` is `rmem_max`: `SO_RCVBUF` is cut to
/// `rmem_max` (then doubled for the kernel's bookkeeping), and libsrt asks
/// with plain `SO_RCVBUF`, never `SO_RCVBUFFORCE`.
fn kernel_caps(requested: usize, rmem_max: usize) -> bool {
    requested > rmem_max
}

/// Says once per process, as a warning, that the kernel caps
/// [`UDP_RECEIVE_BUFFER`] (libsrt cannot tell: it asks and takes what it
/// gets, and reports what it asked for); silent where `rmem_max` cannot be
/// read (not Linux).
fn note_kernel_cap() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(max) = std::fs::read_to_string(RMEM_MAX)
            .ok()
            .and_then(|t| t.trim().parse::<usize>().ok())
        else {
            return;
        };
        if kernel_caps(UDP_RECEIVE_BUFFER, max) {
            tracing::warn!(
                requested_bytes = UDP_RECEIVE_BUFFER,
                rmem_max = max,
                "the kernel caps SRT's UDP receive buffer at net.core.rmem_max: bursts and floods may drop \
                 packets before libsrt reads them (raise it: sysctl -w net.core.rmem_max={UDP_RECEIVE_BUFFER})"
            );
        }
    });
}

/// An SRT socket; closed on drop.
#[derive(Debug)]
pub struct Socket {
    id: RawSocket,
    api: &'static Api,
}

impl Socket {
    /// A new socket; fails with [`Error::is_unavailable`] without libsrt.
    fn new() -> Result<Socket, Error> {
        let api = libsrt()?;
        // SAFETY: no arguments; returns an id or SRT_INVALID_SOCK.
        let id = unsafe { (api.create_socket)() };
        if id == INVALID_SOCK {
            return Err(Error::last(api, "srt_create_socket"));
        }
        Ok(Socket { id, api })
    }

    fn set_int(&self, opt: c_int, v: c_int, call: &'static str) -> Result<(), Error> {
        // SAFETY: `v` lives for the call and its size is passed.
        let r = unsafe {
            (self.api.setsockflag)(
                self.id,
                opt,
                (&v as *const c_int).cast(),
                std::mem::size_of::<c_int>() as c_int,
            )
        };
        if r == SRT_ERROR {
            Err(Error::last(self.api, call))
        } else {
            Ok(())
        }
    }

    /// An integer option's value (as libsrt keeps it, not what the kernel
    /// granted).
    #[cfg(test)]
    fn get_int(&self, opt: c_int, call: &'static str) -> Result<c_int, Error> {
        let mut v: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as c_int;
        // SAFETY: `v` is a writable c_int and `len` its size.
        let r = unsafe { (self.api.getsockflag)(self.id, opt, (&mut v as *mut c_int).cast(), &mut len) };
        if r == SRT_ERROR {
            Err(Error::last(self.api, call))
        } else {
            Ok(v)
        }
    }

    fn set_bytes(&self, opt: c_int, v: &[u8], call: &'static str) -> Result<(), Error> {
        let len = c_int::try_from(v.len()).map_err(|_| Error::invalid(call, "value too long"))?;
        // SAFETY: `v` is a live slice of `len` bytes; libsrt copies it.
        let r = unsafe { (self.api.setsockflag)(self.id, opt, v.as_ptr().cast(), len) };
        if r == SRT_ERROR {
            Err(Error::last(self.api, call))
        } else {
            Ok(())
        }
    }

    /// Live mode, buffers ([`FLOW_WINDOW_PACKETS`], [`UDP_RECEIVE_BUFFER`]),
    /// latency and, if given, the passphrase (10–79 characters, AES with
    /// the caller's key length). Pre-bind options: before `bind` or
    /// `connect`; accepted sockets inherit the listener's.
    fn configure(&self, latency: Duration, passphrase: Option<&str>) -> Result<(), Error> {
        self.set_int(SRTO_TRANSTYPE, SRTT_LIVE, "SRTO_TRANSTYPE")?;
        // FC first: libsrt cuts RCVBUF to FC packets.
        self.set_int(SRTO_FC, FLOW_WINDOW_PACKETS as c_int, "SRTO_FC")?;
        self.set_int(
            SRTO_RCVBUF,
            (FLOW_WINDOW_PACKETS * RCVBUF_BYTES_PER_PACKET) as c_int,
            "SRTO_RCVBUF",
        )?;
        self.set_int(SRTO_UDP_RCVBUF, UDP_RECEIVE_BUFFER as c_int, "SRTO_UDP_RCVBUF")?;
        note_kernel_cap();
        let latency_ms = c_int::try_from(latency.as_millis()).unwrap_or(c_int::MAX);
        self.set_int(SRTO_LATENCY, latency_ms, "SRTO_LATENCY")?;
        if let Some(p) = passphrase {
            self.set_bytes(SRTO_PASSPHRASE, p.as_bytes(), "SRTO_PASSPHRASE")?;
            self.set_int(SRTO_ENFORCEDENCRYPTION, 1, "SRTO_ENFORCEDENCRYPTION")?;
        }
        Ok(())
    }

    /// Blocks in `recv` at most `timeout` (then [`Error::is_timeout`]).
    fn set_receive_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.set_int(SRTO_RCVSYN, 1, "SRTO_RCVSYN")?;
        let t = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        self.set_int(SRTO_RCVTIMEO, t, "SRTO_RCVTIMEO")
    }

    /// Connects to a listener as a caller (blocking up to `connect_timeout`).
    /// A refused connection carries the listener's reason.
    pub fn connect(
        addr: SocketAddr,
        streamid: Option<&str>,
        latency: Duration,
        passphrase: Option<&str>,
        connect_timeout: Duration,
    ) -> Result<Socket, Error> {
        let s = Socket::new()?;
        s.configure(latency, passphrase)?;
        if let Some(id) = streamid {
            if id.len() > MAX_STREAMID {
                return Err(Error::invalid("SRTO_STREAMID", "streamid longer than 512 bytes"));
            }
            s.set_bytes(SRTO_STREAMID, id.as_bytes(), "SRTO_STREAMID")?;
        }
        let t = c_int::try_from(connect_timeout.as_millis()).unwrap_or(c_int::MAX);
        s.set_int(SRTO_CONNTIMEO, t, "SRTO_CONNTIMEO")?;
        let sa = SockAddr::from(addr);
        // SAFETY: `sa` is a valid sockaddr of `sa.len()` bytes, alive for the call.
        let r = unsafe { (s.api.connect)(s.id, sa.as_ptr().cast(), sa.len() as c_int) };
        if r == SRT_ERROR {
            let mut e = Error::last(s.api, "srt_connect");
            if e.is_rejected() {
                // SAFETY: an id; libsrt answers for any.
                e.reject = Some(unsafe { (s.api.getrejectreason)(s.id) });
            }
            return Err(e);
        }
        s.set_receive_timeout(RECV_WAIT)?;
        Ok(s)
    }

    /// Receives one message (a live-mode payload, up to 1456 bytes) into
    /// `buf`; waits at most the receive timeout.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: `buf` is a live, writable buffer of at least `len` bytes.
        let r = unsafe { (self.api.recvmsg)(self.id, buf.as_mut_ptr().cast(), len) };
        if r == SRT_ERROR {
            Err(Error::last(self.api, "srt_recvmsg"))
        } else {
            Ok(usize::try_from(r).unwrap_or(0).min(buf.len()))
        }
    }

    /// The streamid the caller sent (empty when none).
    pub fn stream_id(&self) -> Result<Vec<u8>, Error> {
        let mut buf = [0u8; MAX_STREAMID + 1];
        let mut len = buf.len() as c_int;
        // SAFETY: `buf` is writable for `len` bytes; libsrt stores the length written.
        let r = unsafe { (self.api.getsockflag)(self.id, SRTO_STREAMID, buf.as_mut_ptr().cast(), &mut len) };
        if r == SRT_ERROR {
            return Err(Error::last(self.api, "SRTO_STREAMID"));
        }
        let n = usize::try_from(len).unwrap_or(0).min(MAX_STREAMID);
        let end = buf[..n].iter().position(|&b| b == 0).unwrap_or(n);
        Ok(buf[..end].to_vec())
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        let mut storage = SockAddrStorage::zeroed();
        let mut len = storage.size_of() as c_int;
        // SAFETY: `storage` is a sockaddr_storage of `len` bytes.
        let r = unsafe { (self.api.getpeername)(self.id, (&mut storage as *mut SockAddrStorage).cast(), &mut len) };
        if r == SRT_ERROR {
            return Err(Error::last(self.api, "srt_getpeername"));
        }
        sock_addr(storage, len).ok_or_else(|| Error::invalid("srt_getpeername", "not an IP address"))
    }

    /// A statistics sample; resets the per-sample counts (one sampler per
    /// socket).
    pub fn sample(&self) -> Result<Sample, Error> {
        let mut buf = PerfMonBuf {
            // SAFETY: all fields are integers and floats: zero is valid.
            perf: unsafe { std::mem::zeroed() },
            _slack: [0; 1024],
        };
        // SAFETY: `buf` is writable and at least as large as libsrt's struct.
        let r = unsafe { (self.api.bstats)(self.id, &mut buf, 1) };
        if r == SRT_ERROR {
            return Err(Error::last(self.api, "srt_bstats"));
        }
        let p = buf.perf;
        Ok(Sample {
            rtt: ms(p.ms_rtt),
            receive_buffer: ms(f64::from(p.ms_rcv_buf)),
            latency: ms(f64::from(p.ms_rcv_tsb_pd_delay)),
            lost: count(p.pkt_rcv_loss),
            retransmitted: count(p.pkt_rcv_retrans),
            dropped: count(p.pkt_rcv_drop),
            undecrypted: count(p.pkt_rcv_undecrypt),
            bytes: p.byte_recv,
        })
    }

    /// Closes the socket now (also wakes a thread blocked in `recv`);
    /// closing again is harmless.
    pub fn close(&self) {
        // SAFETY: an id; closing an unknown or closed id only returns an error.
        unsafe {
            (self.api.close)(self.id);
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close();
    }
}

/// Converts what libsrt wrote into a sockaddr_storage.
fn sock_addr(storage: SockAddrStorage, len: c_int) -> Option<SocketAddr> {
    let len = u32::try_from(len)
        .ok()?
        .min(std::mem::size_of::<SockAddrStorage>() as u32);
    // SAFETY: the storage was initialized (zeroed, then written by libsrt) and
    // `len` is within its size.
    let sa = unsafe { SockAddr::new(storage, len as socket2::socklen_t) };
    sa.as_socket()
}

/// What the listen hook decides for a caller.
pub type HookVerdict = Result<(), i32>;

/// The listen hook: called on libsrt's thread with a new connection's id
/// and streamid (raw bytes, at most 512) before it is accepted; `Err(code)`
/// rejects it with that reason (≥ 1000: access-control codes). Must be quick.
pub type Hook = Box<dyn Fn(ConnId, &[u8]) -> HookVerdict + Send + Sync>;

/// A connection id seen by the hook (to follow its fate with
/// [`Listener::state_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(RawSocket);

#[cfg(test)]
impl ConnId {
    /// An id for tests of hooks; libsrt knows no socket by it.
    pub(crate) fn for_test(n: i32) -> ConnId {
        ConnId(n)
    }
}

/// Where a listener's hook lives; leaked, see the module's soundness notes.
struct HookSlot {
    hook: Mutex<Option<Hook>>,
    /// The library whose thread calls the hook.
    api: &'static Api,
}

unsafe extern "C" fn listen_hook(
    opaque: *mut c_void,
    ns: RawSocket,
    _hs_version: c_int,
    _peer: *const c_void,
    streamid: *const c_char,
) -> c_int {
    if opaque.is_null() {
        return -1;
    }
    // SAFETY: `opaque` is the `&'static HookSlot` given in `Listener::bind`.
    let slot: &HookSlot = unsafe { &*(opaque as *const HookSlot) };
    let sid: &[u8] = if streamid.is_null() {
        &[]
    } else {
        // SAFETY: libsrt passes a NUL-terminated buffer valid for this call.
        unsafe { CStr::from_ptr(streamid) }.to_bytes()
    };
    let sid = &sid[..sid.len().min(MAX_STREAMID)];
    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let hook = slot.hook.lock().unwrap_or_else(|e| e.into_inner());
        match hook.as_ref() {
            Some(h) => h(ConnId(ns), sid),
            None => Err(REJECT_UNAVAILABLE),
        }
    }))
    .unwrap_or(Err(REJECT_UNAVAILABLE));
    match verdict {
        Ok(()) => 0,
        Err(code) => {
            // SAFETY: an id; libsrt answers for any.
            unsafe {
                (slot.api.setrejectreason)(ns, code);
            }
            -1
        }
    }
}

/// `SRT_REJX_UNAVAILABLE` (1503).
const REJECT_UNAVAILABLE: i32 = 1503;

/// A listening SRT socket.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    slot: &'static HookSlot,
}

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSlot")
    }
}

impl Listener {
    /// Binds `addr` (UDP) for live-mode callers with `latency` and, if
    /// given, a required passphrase. Not listening until [`Listener::listen`].
    pub fn bind(addr: SocketAddr, latency: Duration, passphrase: Option<&str>) -> Result<Listener, Error> {
        let socket = Socket::new()?;
        socket.configure(latency, passphrase)?;
        if addr.is_ipv6() {
            // `[::]` takes IPv4 callers too; libsrt wants it said.
            socket.set_int(SRTO_IPV6ONLY, 0, "SRTO_IPV6ONLY")?;
        }
        let sa = SockAddr::from(addr);
        // SAFETY: `sa` is a valid sockaddr of `sa.len()` bytes, alive for the call.
        let r = unsafe { (socket.api.bind)(socket.id, sa.as_ptr().cast(), sa.len() as c_int) };
        if r == SRT_ERROR {
            return Err(Error::last(socket.api, "srt_bind"));
        }
        let slot: &'static HookSlot = Box::leak(Box::new(HookSlot {
            hook: Mutex::new(None),
            api: socket.api,
        }));
        Ok(Listener { socket, slot })
    }

    /// Installs `hook` and starts listening (`backlog` handshakes queued).
    pub fn listen(&self, hook: Hook, backlog: u16) -> Result<(), Error> {
        *self.slot.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
        let opaque = (self.slot as *const HookSlot).cast_mut().cast::<c_void>();
        // SAFETY: `listen_hook` matches `srt_listen_callback_fn`; `opaque`
        // points to a leaked, 'static HookSlot (shared access only).
        let r = unsafe { (self.socket.api.listen_callback)(self.socket.id, Some(listen_hook), opaque) };
        if r == SRT_ERROR {
            return Err(Error::last(self.socket.api, "srt_listen_callback"));
        }
        // SAFETY: an id and a number.
        let r = unsafe { (self.socket.api.listen)(self.socket.id, c_int::from(backlog)) };
        if r == SRT_ERROR {
            return Err(Error::last(self.socket.api, "srt_listen"));
        }
        Ok(())
    }

    /// Waits for the next connection the hook let in; an error once the
    /// listener is closed.
    pub fn accept(&self) -> Result<(Socket, ConnId, Option<SocketAddr>), Error> {
        let mut storage = SockAddrStorage::zeroed();
        let mut len = storage.size_of() as c_int;
        // SAFETY: `storage` is a sockaddr_storage of `len` bytes.
        let id = unsafe {
            (self.socket.api.accept)(self.socket.id, (&mut storage as *mut SockAddrStorage).cast(), &mut len)
        };
        if id == INVALID_SOCK {
            return Err(Error::last(self.socket.api, "srt_accept"));
        }
        let s = Socket {
            id,
            api: self.socket.api,
        };
        s.set_receive_timeout(RECV_WAIT)?;
        Ok((s, ConnId(id), sock_addr(storage, len)))
    }

    /// Whether the connection the hook let in as `id` got through the rest
    /// of the handshake (false once libsrt refused it, e.g. its key).
    pub fn is_connected(id: ConnId) -> bool {
        // A `ConnId` comes from a hook, so libsrt is loaded.
        let Ok(api) = libsrt() else { return false };
        // SAFETY: an id; libsrt answers for any.
        unsafe { (api.getsockstate)(id.0) == SRTS_CONNECTED }
    }

    /// Stops listening: wakes `accept`, and the hook rejects from now on.
    pub fn close(&self) {
        *self.slot.hook.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.socket.close();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The fields strom reads sit where `srt.h` 1.5.1 puts them on x86-64
    /// and aarch64 Linux (offsets printed by a C program with
    /// `offsetof(SRT_TRACEBSTATS, …)`).
    #[test]
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn statistics_layout_matches_the_c_header() {
        assert_eq!(size_of::<PerfMon>(), 496);
        assert_eq!(offset_of!(PerfMon, pkt_rcv_loss), 156);
        assert_eq!(offset_of!(PerfMon, pkt_rcv_retrans), 164);
        assert_eq!(offset_of!(PerfMon, pkt_rcv_drop), 236);
        assert_eq!(offset_of!(PerfMon, pkt_rcv_undecrypt), 240);
        assert_eq!(offset_of!(PerfMon, byte_recv), 256);
        assert_eq!(offset_of!(PerfMon, ms_rtt), 328);
        assert_eq!(offset_of!(PerfMon, ms_rcv_buf), 388);
        assert_eq!(offset_of!(PerfMon, ms_rcv_tsb_pd_delay), 392);
        assert_eq!(offset_of!(PerfMon, byte_recv_unique), 488);
    }

    #[test]
    fn the_kernel_cap_is_noticed_only_when_it_cuts() {
        // Debian's default rmem_max (208 KiB) cuts 16 MiB; a raised one does not.
        assert!(kernel_caps(UDP_RECEIVE_BUFFER, 212_992));
        assert!(kernel_caps(UDP_RECEIVE_BUFFER, UDP_RECEIVE_BUFFER - 1));
        assert!(!kernel_caps(UDP_RECEIVE_BUFFER, UDP_RECEIVE_BUFFER));
        assert!(!kernel_caps(UDP_RECEIVE_BUFFER, 64 << 20));
    }

    #[test]
    fn sockets_get_the_buffers_and_window() {
        let s = Socket::new().expect("libsrt");
        // libsrt's defaults, for contrast: a 25600-packet window.
        assert_eq!(s.get_int(SRTO_FC, "SRTO_FC").expect("fc"), 25_600);
        s.configure(Duration::from_millis(120), None).expect("configure");
        assert_eq!(s.get_int(SRTO_FC, "SRTO_FC").expect("fc") as usize, FLOW_WINDOW_PACKETS);
        // Not cut by the window: all 8192 packets of buffer are there.
        assert_eq!(
            s.get_int(SRTO_RCVBUF, "SRTO_RCVBUF").expect("rcvbuf") as usize,
            FLOW_WINDOW_PACKETS * RCVBUF_BYTES_PER_PACKET
        );
        assert_eq!(
            s.get_int(SRTO_UDP_RCVBUF, "SRTO_UDP_RCVBUF").expect("udp rcvbuf") as usize,
            UDP_RECEIVE_BUFFER
        );
    }

    #[test]
    fn a_missing_library_gives_an_error_naming_the_package() {
        let e = load_from(&["libsrt-strom-test-missing.so.9"]).expect_err("no such library");
        assert!(e.is_unavailable(), "{e}");
        assert!(!e.is_timeout() && !e.is_rejected() && !e.is_no_server());
        let text = e.to_string();
        assert!(text.contains("libsrt-strom-test-missing.so.9"), "{text}");
        assert!(text.contains("apt-get install libsrt1.5-openssl"), "{text}");
        assert!(text.starts_with("load libsrt: "), "{text}");
        assert!(!text.contains("(-2)"), "our own code is not shown: {text}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_library_that_is_not_libsrt_is_refused() {
        // libc loads but has no srt_getversion.
        let e = load_from(&["libc.so.6"]).expect_err("not libsrt");
        assert!(e.is_unavailable(), "{e}");
        assert!(e.message.contains("libc.so.6: srt_getversion missing"), "{e}");
    }

    #[test]
    fn only_libsrt_1_5_and_later_1_x_are_accepted() {
        assert!(check_version(0x01_04_04).is_err());
        assert!(check_version(0x01_05_00).is_ok());
        assert!(check_version(0x01_05_01).is_ok());
        assert!(check_version(0x01_06_00).is_ok());
        assert!(check_version(0x02_00_00).is_err());
        assert!(check_version(0).is_err());
        let why = check_version(0x01_04_04).expect_err("old");
        assert!(why.contains("1.4.4"), "{why}");
    }

    #[test]
    fn the_system_libsrt_loads_once_with_a_1_5_version() {
        let api = libsrt().expect("libsrt 1.5 installed (apt-get install libsrt1.5-openssl)");
        // SAFETY: no arguments, returns a number.
        let v = unsafe { (api.getversion)() };
        assert!(check_version(v).is_ok(), "{}", version_text(v));
        assert!(std::ptr::eq(api, libsrt().expect("loaded")), "loaded once");
        assert!(version().starts_with(&version_text(v)), "{}", version());
    }

    #[test]
    fn a_caller_with_no_listener_times_out_and_long_streamids_are_refused() {
        // A port nobody listens on: libsrt gives up after the connect timeout.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let t = std::time::Instant::now();
        let e = Socket::connect(
            addr,
            Some("x"),
            Duration::from_millis(120),
            None,
            Duration::from_millis(300),
        )
        .expect_err("nobody listens");
        assert!(e.is_no_server(), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        // Oversized streamids are refused before libsrt sees them.
        let long = "x".repeat(MAX_STREAMID + 1);
        let e = Socket::connect(
            addr,
            Some(&long),
            Duration::from_millis(120),
            None,
            Duration::from_millis(300),
        )
        .expect_err("too long");
        assert_eq!(e.call, "SRTO_STREAMID");
    }

    #[test]
    fn listener_and_caller_exchange_reject_codes_and_data() {
        let listener =
            Listener::bind("127.0.0.1:0".parse().expect("addr"), Duration::from_millis(120), None).expect("bind");
        // The bound port: libsrt picked one; ask through a caller-less path.
        let mut storage = SockAddrStorage::zeroed();
        let mut len = storage.size_of() as c_int;
        // SAFETY: as in `Socket::peer_addr`.
        let r = unsafe {
            (listener.socket.api.getsockname)(
                listener.socket.id,
                (&mut storage as *mut SockAddrStorage).cast(),
                &mut len,
            )
        };
        assert_ne!(r, SRT_ERROR);
        let addr = sock_addr(storage, len).expect("bound address");
        listener
            .listen(Box::new(|_, sid| if sid == b"ok" { Ok(()) } else { Err(1404) }), 4)
            .expect("listen");
        let e = Socket::connect(
            addr,
            Some("nope"),
            Duration::from_millis(120),
            None,
            Duration::from_secs(2),
        )
        .expect_err("refused");
        assert!(e.is_rejected(), "{e}");
        assert_eq!(e.reject, Some(1404));
        let caller = Socket::connect(
            addr,
            Some("ok"),
            Duration::from_millis(120),
            None,
            Duration::from_secs(2),
        )
        .expect("connects");
        let (accepted, _, peer) = listener.accept().expect("accept");
        assert_eq!(accepted.stream_id().expect("streamid"), b"ok");
        // An accepted connection has the listener's window and buffer.
        assert_eq!(
            accepted.get_int(SRTO_FC, "SRTO_FC").expect("fc") as usize,
            FLOW_WINDOW_PACKETS
        );
        assert_eq!(
            accepted.get_int(SRTO_RCVBUF, "SRTO_RCVBUF").expect("rcvbuf") as usize,
            FLOW_WINDOW_PACKETS * RCVBUF_BYTES_PER_PACKET
        );
        assert_eq!(peer.map(|p| p.ip()), Some(std::net::IpAddr::from([127, 0, 0, 1])));
        let msg = [0x47u8; 1316];
        // SAFETY: `msg` is a live buffer of its length.
        let sent = unsafe { (caller.api.sendmsg)(caller.id, msg.as_ptr().cast(), msg.len() as c_int, -1, 0) };
        assert_eq!(sent, 1316);
        let mut buf = [0u8; 1500];
        let n = accepted.recv(&mut buf).expect("data");
        assert_eq!(&buf[..n], &msg[..]);
        let s = accepted.sample().expect("stats");
        assert_eq!(s.latency, Duration::from_millis(120));
        caller.close();
        listener.close();
        assert!(listener.accept().is_err(), "a closed listener accepts nothing");
    }
}
