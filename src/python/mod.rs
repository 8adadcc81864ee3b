//! The thin PyO3 layer: argument conversion, core errors as Python exceptions,
//! and core futures run with the GIL released. The checks are the core's.

mod bearer;
mod dex;
mod errors;
mod exit;
mod functions;
mod runtime;
mod secret_store;

use pyo3::prelude::*;
use pyo3::types::PyDict;

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Our `log` records go to Python's `kfp_auth` logger (see exit::Logger). Other
    // crates' records are dropped: they are not redacted (hyper and reqwest can log
    // URLs with their query values).
    if log::set_boxed_logger(Box::new(exit::Logger::default())).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    // Before Python finalizes, our threads stop calling into it (see exit.rs).
    let before_exit = wrap_pyfunction!(exit::_before_exit, m)?;
    py.import("atexit")?.call_method1("register", (before_exit,))?;
    // No fork on Windows, nor `os.register_at_fork`: nothing to redo in a child there.
    let os = py.import("os")?;
    if os.hasattr("register_at_fork")? {
        let kwargs = PyDict::new(py);
        kwargs.set_item("after_in_child", wrap_pyfunction!(exit::_after_fork_in_child, m)?)?;
        os.call_method("register_at_fork", (), Some(&kwargs))?;
    }

    // The exception classes, looked up now so a missing one fails the import rather
    // than a later error; offered here too, as they were when the bindings made them.
    for class in errors::EXPORTED {
        m.add(class.name(), class.get(py)?)?;
    }

    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<dex::DexSession>()?;
    m.add_class::<bearer::BearerSession>()?;
    m.add_function(wrap_pyfunction!(functions::rbac_denial, m)?)?;
    m.add_function(wrap_pyfunction!(functions::check_settings, m)?)?;
    m.add_function(wrap_pyfunction!(functions::proxy_for, m)?)?;
    m.add_function(wrap_pyfunction!(functions::is_login_response, m)?)?;
    m.add_function(wrap_pyfunction!(functions::redact_url, m)?)?;
    m.add_function(wrap_pyfunction!(functions::read_private_file, m)?)?;
    m.add_function(wrap_pyfunction!(functions::write_private_file, m)?)?;
    m.add_function(wrap_pyfunction!(functions::default_session_cache, m)?)?;
    m.add_function(wrap_pyfunction!(functions::default_token_cache, m)?)?;
    m.add_function(wrap_pyfunction!(functions::token_cache_logins, m)?)?;
    m.add_function(wrap_pyfunction!(functions::token_cache_remove, m)?)?;
    m.add_function(wrap_pyfunction!(functions::inspect_token, m)?)?;
    m.add_function(wrap_pyfunction!(functions::inspect_token_file, m)?)?;
    m.add_function(wrap_pyfunction!(functions::default_token_path, m)?)?;
    m.add("TOKEN_PATH_ENV", crate::token::TOKEN_PATH_ENV)?;
    m.add("DEFAULT_TOKEN_PATH", crate::token::DEFAULT_TOKEN_PATH)?;
    Ok(())
}
